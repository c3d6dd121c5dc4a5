"""Experiments as data: one frozen dataclass per trained model, and the three profiles.

A :class:`TrainConfig` names everything that changes a model's weights; its :attr:`key`
(a hash of every field plus the versions of the data and training code) keys the cache of
checkpoints and outputs. A :class:`Profile` is the one place that fixes dataset sizes,
epochs and which models the book trains: ``smoke`` (digits, offline, a few minutes on a
CPU), ``quick`` (the real datasets, reduced), ``paper`` (the paper's settings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from .data import DATA_VERSION, dataset_info
from .defences import Defence
from .models import ARCHS
from .quantizers import PAPER_READINGS, QuantSpec
from .store import stable_hash

ROLES = ("target", "shadow", "ref")
# Compute precision of a model's training steps and of its outputs: 'bf16' is bf16 autocast with channels_last (what
# CUDA runs always computed, so every stored paper row is bf16: the weights of each layer are cast to bf16, 8
# significant bits, before its convolution); 'fp32' computes every layer in float32 (the paper's 32-bit baseline).
PRECISIONS = ("bf16", "fp32")
TRAIN_VERSION = 2  # bump when a change to qmia.train changes the weights it produces

# Training recipes: which data sets are trained with augmentation. The paper names augmentation
# (random cropping and rotation) for Fashion-MNIST only and none for CIFAR-10 (Section 4.1.1); that is
# 'paper-stated'. 'augment-all' also augments CIFAR-10 (crops and flips), the usual ResNet recipe.
RECIPES: dict[str, dict[str, bool]] = {
    "paper-stated": {"digits": True, "fashion_mnist": True, "cifar10": False},
    "augment-all": {"digits": True, "fashion_mnist": True, "cifar10": True},
}


SEED_MAX = 2**32 - 1  # scikit-learn's random_state takes 0..2^32 - 1; torch's generators more


@dataclass(frozen=True)
class TrainConfig:
    """One model to train.

    role: 'target' trains on target_in, 'shadow' on shadow_in, 'ref' (LiRA reference model
    ``ref_index`` of ``ref_count``) on a seeded random half of target_in + target_out.
    n_per_split: images in each of the four disjoint splits (15,000 in the paper).
    seed: seeds the split, the initialisation and the batch order.
    defence: a defence other than quantization-aware training (pruning, DP-SGD, post-training
        quantization; :class:`qmia.defences.Defence`), of a full-precision model only; it keys the
        cache only when set, so the keys of undefended models are those they always had.
    precision: the compute precision (:data:`PRECISIONS`) of training and outputs, on any device; it keys the cache
        only when not 'bf16', so the keys of the stored (bf16) paper models are those they always had. DP-SGD
        steps compute in float32 whatever it says (Opacus), their outputs at this precision.
    """

    dataset: str
    arch: str
    n_per_split: int
    epochs: int
    quant: QuantSpec = field(default_factory=QuantSpec)
    role: str = "target"
    ref_index: int = 0
    ref_count: int = 0
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    seed: int = 0
    defence: Defence = field(default_factory=Defence)
    precision: str = "bf16"

    def __post_init__(self) -> None:
        dataset_info(self.dataset)
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; valid: {', '.join(ARCHS)}")
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; valid: {', '.join(ROLES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise ValueError(
                f"seed must be an integer from 0 to {SEED_MAX} (2^32 - 1, what every component accepts); "
                f"got {self.seed!r}"
            )
        for name in ("n_per_split", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer; got {v!r}")
        if self.role == "ref" and not (self.ref_count >= 2 and 0 <= self.ref_index < self.ref_count):
            raise ValueError(
                "a reference model needs ref_count >= 2 and 0 <= ref_index < ref_count; "
                f"got {self.ref_index}/{self.ref_count}"
            )
        if self.role != "ref" and (self.ref_index or self.ref_count):
            raise ValueError("ref_index and ref_count are for role='ref' only")
        if self.arch == "lenet" and dataset_info(self.dataset).image_size < 10:
            raise ValueError("LeNet-5 needs images of at least 10x10")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if not isinstance(self.defence, Defence):
            raise TypeError(f"defence must be a qmia Defence; got {type(self.defence).__name__}")
        if self.defence.kind != "none" and self.quant.method != "none":
            raise ValueError(
                f"a defence ({self.defence.label}) applies to a full-precision model; got quant {self.quant.label}"
            )

    @property
    def key(self) -> str:
        """Hash of every setting that changes the weights, and the code versions."""
        fields = {**asdict(self), "quant": self.quant.key_dict()}
        del fields["defence"]
        if self.precision == "bf16":
            del fields["precision"]
        if self.defence.kind != "none":
            fields["defence"] = self.defence.key_dict()
        return stable_hash({**fields, "train_version": TRAIN_VERSION, "data_version": DATA_VERSION})

    @property
    def label(self) -> str:
        role = f"ref{self.ref_index}" if self.role == "ref" else self.role
        model = self.quant.label if self.defence.kind == "none" else self.defence.label
        return f"{self.dataset}/{self.arch}/{model}/{role}/seed{self.seed}"

    def with_(self, **changes) -> TrainConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class Profile:
    """Sizes, epochs and the experiment grid of one profile.

    models: (architecture, dataset) pairs of the paper's Tables 3-5 under this profile.
    resnet: the (architecture, dataset) used for Figure 5, Table 6 and Figure 6.
    sweep: the (architecture, dataset) of the privacy-utility sweep over ``sweep_bits``.
    lira_refs: LiRA reference models per target configuration (16 in the paper profile).
    dp_epsilons: the privacy budgets of the DP-SGD targets on the defences page (each with lira_refs
        reference models trained with DP-SGD too).
    seeds: the seeds of the tables; claim_seeds: the seeds of the rows behind the abstract's claims
        (the profile's ResNet at full precision and at the lowest bitwidth, every reading).
    readings: the readings of the paper's quantizer the book compares (:data:`qmia.quantizers.PAPER_READINGS`).
    recipe: the training recipe (:data:`RECIPES`) of every model; recipes: those compared on the
        readings page.
    precision: the compute precision (:data:`PRECISIONS`) of every model.
    """

    name: str
    n_per_split: dict[str, int]
    epochs: dict[str, int]
    models: tuple[tuple[str, str], ...]
    resnet: tuple[str, str]
    sweep: tuple[str, str]
    bits: tuple[int, ...] = (4, 8, 16)
    sweep_bits: tuple[int, ...] = (2, 3, 4, 6, 8, 12, 16)
    lira_refs: int = 16
    lira_models: tuple[tuple[str, str], ...] = ()
    dp_epsilons: tuple[float, ...] = (1.0, 8.0)
    seeds: tuple[int, ...] = (0,)
    claim_seeds: tuple[int, ...] = (0, 1, 2)
    readings: tuple[str, ...] = ("literal", "centred", "min-anchored", "printed")
    recipe: str = "paper-stated"
    recipes: tuple[str, ...] = ("paper-stated", "augment-all")
    batch_size: int = 128
    lr: float = 0.05
    precision: str = "bf16"
    description: str = ""

    def __post_init__(self) -> None:
        for r in (self.recipe, *self.recipes):
            if r not in RECIPES:
                raise ValueError(f"unknown recipe {r!r}; valid: {', '.join(RECIPES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        bad = [r for r in self.readings if r not in PAPER_READINGS]
        if bad or not self.readings:
            raise ValueError(f"unknown reading(s) {bad}; valid: {', '.join(PAPER_READINGS)}")

    def config(
        self, arch: str, dataset: str | None = None, quant: QuantSpec | None = None, recipe: str | None = None, **kw
    ) -> TrainConfig:
        """The TrainConfig of ``arch`` on ``dataset`` (default: the profile's dataset for it), trained with
        ``recipe`` (default: the profile's)."""
        dataset = dataset or dict(self.models + (self.resnet, self.sweep)).get(arch)
        if dataset is None:
            raise ValueError(f"profile {self.name!r} has no dataset for {arch!r}; pass dataset=")
        if dataset not in self.n_per_split:
            raise ValueError(
                f"profile {self.name!r} does not use dataset {dataset!r}; it uses {', '.join(self.n_per_split)}"
            )
        recipe = recipe or self.recipe
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; valid: {', '.join(RECIPES)}")
        return TrainConfig(
            dataset=dataset,
            arch=arch,
            n_per_split=self.n_per_split[dataset],
            epochs=self.epochs[arch],
            quant=quant or QuantSpec(),
            batch_size=self.batch_size,
            lr=self.lr,
            augment=RECIPES[recipe][dataset],
            **{"precision": self.precision, **kw},
        )


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        n_per_split={"digits": 400},
        epochs={"lenet": 30, "resnet20": 8, "resnet50": 2},
        models=(("lenet", "digits"), ("resnet20", "digits")),
        resnet=("resnet20", "digits"),
        sweep=("lenet", "digits"),
        sweep_bits=(2, 4, 8, 16),
        lira_refs=4,
        lira_models=(("lenet", "digits"),),
        precision="fp32",
        dp_epsilons=(8.0,),  # one budget: the smoke book checks the pipeline, and DP-SGD is the slowest training
        batch_size=64,
        description="scikit-learn digits (16x16), 400 images per split; runs offline in minutes on a CPU",
    ),
    "quick": Profile(
        name="quick",
        n_per_split={"fashion_mnist": 1000, "cifar10": 500},
        epochs={"lenet": 30, "resnet20": 25, "resnet50": 4},
        models=(("lenet", "fashion_mnist"), ("resnet20", "cifar10")),
        resnet=("resnet20", "cifar10"),
        sweep=("lenet", "fashion_mnist"),
        lira_refs=8,
        lira_models=(("lenet", "fashion_mnist"),),
        batch_size=32,
        precision="fp32",
        description="real Fashion-MNIST (1,000 images per split, 30 epochs) and CIFAR-10 (500 per split, 25 epochs), "
        "batch 32; the book in about 25 minutes on 2 CPU cores",
    ),
    "paper": Profile(
        name="paper",
        n_per_split={"fashion_mnist": 15000, "cifar10": 15000},
        epochs={"lenet": 50, "resnet20": 50, "resnet50": 50},
        models=(("lenet", "fashion_mnist"), ("resnet20", "cifar10"), ("resnet50", "cifar10")),
        resnet=("resnet20", "cifar10"),
        sweep=("resnet20", "cifar10"),
        lira_refs=16,
        lira_models=(("lenet", "fashion_mnist"), ("resnet20", "cifar10")),
        # One budget: DP-SGD trains 17 ResNet-20 models per budget (a target and its reference models), several times
        # slower than plain training, in three parts (qmia.parts: two train the DP-SGD models, carried to the third).
        dp_epsilons=(8.0,),
        description="the paper's settings: 15,000 images per split, 50 epochs, LeNet, ResNet-20 and ResNet-50",
    ),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid: {', '.join(PROFILES)}")
    return PROFILES[name]
