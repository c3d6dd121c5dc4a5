"""DP-SGD (Abadi et al. 2016): the privacy accounting and the training of one model with Opacus.

:func:`dp_fit` trains one model with Opacus' ``PrivacyEngine`` (per-example clipping to ``max_grad_norm``,
Gaussian noise calibrated by the RDP accountant to (epsilon, delta = 1/n) over the whole run, Poisson sampling
of batches) in the shared loop (:mod:`qmia.loop`); :func:`qmia.multitrain.fit_many_dp` is the same step for N
models at once, with the noise multiplier (:func:`noise_multiplier`) and the epsilon spent
(:func:`epsilon_spent`) from here. Opacus is imported inside each function: only DP-SGD pays for loading it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .defences import is_int, is_real
from .loop import StepResult, descend, run_epochs


def dp_compatible(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that Opacus can train: BatchNorm replaced by GroupNorm (``ModuleValidator.fix``),
    then validated. Raises ValueError naming the layers that remain unsupported (e.g. a layer with
    buffers such as a pruning mask)."""
    from opacus.grad_sample import GradSampleModule  # heavy: imported only where DP-SGD runs
    from opacus.validators import ModuleValidator  # heavy: imported only where DP-SGD runs
    from opacus.validators.errors import UnsupportedModuleError  # heavy: imported only where DP-SGD runs

    fixed = ModuleValidator.fix(model)
    training = fixed.training
    fixed.train()  # the validator also requires training mode; that is not what is checked here
    try:
        ModuleValidator.validate(fixed, strict=True)
        problems = [str(e) for e in GradSampleModule.validate(fixed, strict=False)]
    except UnsupportedModuleError as e:
        problems = [str(e)]
    finally:
        fixed.train(training)
    if problems:
        bad = [
            n or "<root>"
            for n, m in fixed.named_modules()
            if type(m) in ModuleValidator.VALIDATORS
            or (
                any(True for _ in m.buffers(recurse=False))
                and any(p.requires_grad for p in m.parameters(recurse=False))
            )
        ]
        raise ValueError(
            f"model cannot be trained with DP-SGD; unsupported layers: {', '.join(bad) or '?'} ({'; '.join(problems)})"
        )
    return fixed


# Opacus' search for sigma starts at a noise so large that the RDP bound is loose there; it says so, harmlessly.
_SEARCH_WARNING = "Optimal order is the largest alpha"


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, epochs: int, accountant: str = "rdp") -> float:
    """Gaussian noise multiplier sigma (noise std / clipping norm) for which ``epochs / sample_rate`` steps of
    DP-SGD with Poisson sampling at ``sample_rate`` are (epsilon, delta)-DP under ``accountant`` ('rdp', 'prv',
    'gdp'); Opacus' ``get_noise_multiplier`` (its epsilon is below the target by at most 0.01)."""
    from opacus.accountants.utils import get_noise_multiplier  # heavy: imported only where DP-SGD runs

    if not is_real(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be > 0; got {epsilon!r}")
    if not 0 < delta < 1 or not 0 < sample_rate <= 1:
        raise ValueError(
            f"need 0 < delta < 1 and 0 < sample_rate <= 1; got delta={delta!r}, sample_rate={sample_rate!r}"
        )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _SEARCH_WARNING, UserWarning)
        return float(
            get_noise_multiplier(
                target_epsilon=float(epsilon),
                target_delta=float(delta),
                sample_rate=sample_rate,
                epochs=epochs,
                accountant=accountant,
            )
        )


def epsilon_spent(sigma: float, sample_rate: float, steps: int, delta: float) -> float:
    """The epsilon at ``delta`` that Opacus' RDP accountant gives ``steps`` DP-SGD steps with Poisson sampling at
    ``sample_rate`` and noise multiplier ``sigma`` (what :func:`dp_fit` reports from its engine)."""
    from opacus.accountants import RDPAccountant  # heavy: imported only where DP-SGD runs

    accountant = RDPAccountant()
    accountant.history = [(float(sigma), float(sample_rate), int(steps))]
    return float(accountant.get_epsilon(delta))


def dp_fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    epsilon: float,
    max_grad_norm: float = 1.0,
    augment_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    seed: int = 0,
    momentum: float = 0.9,
    progress: bool = False,
) -> tuple[nn.Module, float]:
    """Train a copy of ``model`` with DP-SGD (Opacus); returns it (plain nn.Module, eval mode) and the epsilon spent.

    x: float inputs n x C x H x W on the model's device, fed to the model as they are, or through ``augment_fn``
    (qmia.train passes images in [0, 1] and an ``augment_fn`` that augments and standardises); y: int64 labels (n).
    The copy is :func:`dp_compatible` (BatchNorm -> GroupNorm); ``model`` itself is not changed.
    Cross-entropy (mean), SGD with ``momentum`` at a constant ``lr``; per-example gradients clipped to
    ``max_grad_norm``; Poisson sampling with expected batch ``batch_size`` (sample rate 1 / ceil(n / batch_size));
    noise calibrated by the RDP accountant to ``epsilon`` at delta = 1/n over ``epochs`` epochs.
    ``augment_fn(xb) -> xb``: applied to each sampled batch before the forward pass; ``progress``: a bar of epochs.

    Deterministic for ``seed`` on a CPU: the Poisson sampler draws from a generator seeded with ``seed``,
    the noise from one seeded with ``seed + 1`` (on the model's device), and anything drawing from
    torch's global generator (e.g. ``augment_fn``) runs under ``torch.manual_seed(seed)`` inside
    ``torch.random.fork_rng``, so the caller's global state is left as it was.
    The epsilon returned is the engine's RDP accountant's at delta = 1/n after the steps taken
    (at most the target; Opacus calibrates to within 0.01 below it).
    """
    from opacus import PrivacyEngine  # heavy: imported only where DP-SGD runs

    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if not is_int(v) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    if not is_real(epsilon) or epsilon <= 0:
        raise ValueError(f"epsilon must be > 0; got {epsilon!r}")
    if not is_real(max_grad_norm) or max_grad_norm <= 0:
        raise ValueError(f"max_grad_norm must be > 0; got {max_grad_norm!r}")
    n = len(x)
    if n < 2 or len(y) != n:
        raise ValueError(f"need at least 2 examples and one label each; got {n} inputs and {len(y)} labels")
    dev = x.device
    delta = 1.0 / n
    net = dp_compatible(model).to(dev).train()
    loader = DataLoader(
        TensorDataset(x, y), batch_size=min(batch_size, n), generator=torch.Generator().manual_seed(seed)
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Secure RNG turned off", UserWarning)  # reproducible by design
        engine = PrivacyEngine(accountant="rdp")
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _SEARCH_WARNING, UserWarning)
        private, opt, loader = engine.make_private_with_epsilon(
            module=net,
            optimizer=opt,
            data_loader=loader,
            target_epsilon=float(epsilon),
            target_delta=delta,
            epochs=epochs,
            max_grad_norm=float(max_grad_norm),
            noise_generator=torch.Generator(device=dev).manual_seed(seed + 1),
        )

    def step(batches, _: int) -> StepResult:
        xb, yb = next(batches)  # an empty Poisson batch still takes a (noise-only) step, as accounted
        if augment_fn is not None and len(xb):
            xb = augment_fn(xb)
        loss = F.cross_entropy(private(xb), yb) if len(xb) else private(xb).sum()
        descend(opt, None, loss)  # Opacus' optimizer clips each example's gradient and adds the noise
        return loss.detach() * len(xb), len(xb)

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Full backward hook is firing", UserWarning)  # inputs need no gradient
        torch.manual_seed(seed)
        run_epochs(epochs, len(loader), lambda: iter(loader), step, "dp-sgd", progress)
    spent = float(engine.get_epsilon(delta))
    private._close()  # remove Opacus' hooks and per-sample gradient attributes
    plain = private._module
    for p in plain.parameters():
        p.grad = None
    return plain.eval(), spent
