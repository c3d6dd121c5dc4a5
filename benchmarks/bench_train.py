"""Training throughput: a plain PyTorch loop against qmia's loop, side by side in one run.

    python benchmarks/bench_train.py                 # small, on the CPU (a minute or two)
    python benchmarks/bench_train.py --device cuda   # full, on a GPU
    python benchmarks/bench_train.py --accuracy --data-root data   # also: test accuracy of both loops

For each architecture it prints images/s of

* ``plain``: the textbook loop: fp32, default layout, ``torch.optim.SGD`` (foreach), the batch
  sliced from a uint8 tensor already on the device, no augmentation;
* ``qmia``: :func:`qmia.loop.fit` (augmentation on the device, bf16 autocast and channels_last, on CUDA
  and on a CPU, fused SGD on CUDA), in full precision and with the paper's 4-bit quantizer (its cost);
  ``@fp32``: the same loop computing in float32 (``precision='fp32'``; on a CPU, qmia's loop before bf16);
* ``qmia xN``: :func:`qmia.multitrain.fit_many`, N models of the same shape in one vmapped step
  (LiRA's reference models, shadows, seeds), counted as N models' images per second; ``mixed``: the N
  models quantized at different bitwidths and readings, as the sweep's and readings' groups are;
  ResNet-50 in groups of ``--group50`` sizes (default 2 and 4 on CUDA);
* ``qmia dp-sgd``: DP-SGD with Opacus (:func:`qmia.dp.dp_fit`, one model), where Opacus is installed, and
  ``qmia xN dp-sgd``: N models with DP-SGD in one vmapped step (:func:`qmia.multitrain.fit_many_dp`);

and the ratios to the plain loop. Data are synthetic (random uint8 images) of the real shapes;
``--accuracy`` trains LeNet-5 on Fashion-MNIST and ResNet-20 on CIFAR-10 with both loops (same
recipe: SGD, one-cycle, augmentation) and reports their test accuracy. ``--json FILE`` writes every
measurement; ``--profile-steps K`` also profiles K steps of each architecture as the plan trains it
(ResNet-50 alone, the others in groups), eager and with CUDA graphs: where the step's time goes. The
run stops starting new throughput measurements after ``--budget`` seconds, and new profiles 60 s later.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qmia import QuantSpec  # noqa: E402
from qmia.augment import apply_augment, augment_draws, standardize
from qmia.config import TrainConfig  # noqa: E402
from qmia.data import dataset_info
from qmia.loop import fit  # noqa: E402
from qmia.models import build_model  # noqa: E402
from qmia.multitrain import fit_many  # noqa: E402
from qmia.quantizers import quantize_model, reading_spec  # noqa: E402
from qmia.train import predict  # noqa: E402

DATASET = {"lenet": "fashion_mnist", "resnet20": "cifar10", "resnet50": "cifar10"}
# The step profiles (--profile-steps) run after the throughput rows, and start within this many seconds after --budget.
PROFILE_SECONDS = 60


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo) and whether it has native bf16."""
    from qmia.compute import cpu_native_bf16

    try:
        name = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine() or "cpu"
    return f"{name} ({'native' if cpu_native_bf16() else 'no native'} bf16)"


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def synthetic(arch: str, n: int, dev: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    info = dataset_info(DATASET[arch])
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, info.channels, info.image_size, info.image_size), generator=g, dtype=torch.uint8)
    y = torch.randint(0, info.num_classes, (n,), generator=g)
    return x.to(dev), y.to(dev)


def plain_loop(
    model,
    x_u8,
    y,
    info,
    epochs: int,
    bs: int,
    lr: float = 0.05,
    augment: bool = False,
    onecycle: bool = False,
    seed: int = 0,
) -> float:
    """The textbook loop; returns seconds. With ``augment``/``onecycle`` it follows qmia's recipe
    (for the accuracy comparison), drawing augmentations per step as plain code does."""
    dev = x_u8.device
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = len(x_u8) // bs
    sched = (
        torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.15)
        if onecycle
        else None
    )
    gen = torch.Generator().manual_seed(seed)
    model.train()
    sync(dev)
    start = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x_u8), generator=gen).to(dev)
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            xb = x_u8[idx].float() / 255
            if augment:
                xb = apply_augment(xb, info, augment_draws(len(idx), info, gen, dev))
            loss = F.cross_entropy(model(standardize(xb, info)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    sync(dev)
    return time.perf_counter() - start


def bench_plain(arch: str, n: int, bs: int, epochs: int, dev: torch.device) -> float:
    info = dataset_info(DATASET[arch])
    x, y = synthetic(arch, n, dev)
    torch.manual_seed(0)
    model = build_model(arch, info.channels, info.num_classes, info.image_size).to(dev)
    plain_loop(model, x[: 4 * bs], y[: 4 * bs], info, 1, bs)  # warm-up (cuDNN autotuning, allocator)
    return epochs * n / plain_loop(model, x, y, info, epochs, bs)


def _config(
    arch: str, n: int, bs: int, epochs: int, quant: QuantSpec, seed: int = 0, precision: str = "bf16"
) -> TrainConfig:
    return TrainConfig(
        DATASET[arch], arch, n_per_split=n, epochs=epochs, quant=quant, batch_size=bs, seed=seed, precision=precision
    )


def _model(arch: str, quant: QuantSpec, dev: torch.device, precision: str = "bf16"):
    info = dataset_info(DATASET[arch])
    model = quantize_model(build_model(arch, info.channels, info.num_classes, info.image_size), quant).to(dev)
    return model.to(memory_format=torch.channels_last) if dev.type == "cuda" or precision == "bf16" else model


def bench_qmia(
    arch: str, n: int, bs: int, epochs: int, dev: torch.device, quant: QuantSpec, precision: str = "bf16"
) -> float:
    x, y = synthetic(arch, n, dev)
    fit(
        _model(arch, quant, dev, precision),
        _config(arch, 4 * bs, bs, 1, quant, precision=precision),
        x[: 4 * bs],
        y[: 4 * bs],
        progress=False,
    )
    model = _model(arch, quant, dev, precision)
    sync(dev)
    start = time.perf_counter()
    fit(model, _config(arch, n, bs, epochs, quant, precision=precision), x, y, progress=False)
    sync(dev)
    return epochs * n / (time.perf_counter() - start)


def bench_many(
    arch: str, n: int, bs: int, epochs: int, dev: torch.device, quant: QuantSpec | list[QuantSpec], count: int
) -> float:
    """Images/s of ``count`` models trained together, all with ``quant`` or model j with ``quant[j % len(quant)]``."""
    quants = [quant[j % len(quant)] if isinstance(quant, list) else quant for j in range(count)]
    data = [synthetic(arch, n, dev, seed=j) for j in range(count)]
    configs = [_config(arch, n, bs, epochs, q, seed=j) for j, q in enumerate(quants)]
    warm = [_config(arch, 4 * bs, bs, 1, q, seed=j) for j, q in enumerate(quants)]
    fit_many(
        [_model(arch, q, dev) for q in quants],
        warm,
        [x[: 4 * bs] for x, _ in data],
        [y[: 4 * bs] for _, y in data],
        progress=False,
    )
    models = [_model(arch, q, dev) for q in quants]
    sync(dev)
    start = time.perf_counter()
    fit_many(models, configs, [x for x, _ in data], [y for _, y in data], progress=False)
    sync(dev)
    return count * epochs * n / (time.perf_counter() - start)


def bench_dp(arch: str, n: int, bs: int, epochs: int, dev: torch.device) -> float:
    """Images/s of DP-SGD (:func:`qmia.dp.dp_fit`: Opacus, per-example gradients, GroupNorm for BatchNorm)
    at epsilon 8 on one model, with qmia's augmentation; the paper profile's DP parts are sized by it."""
    from qmia.dp import dp_fit

    info = dataset_info(DATASET[arch])
    x, y = synthetic(arch, n, dev)
    model = build_model(arch, info.channels, info.num_classes, info.image_size).to(dev)
    augment = lambda xb: standardize(apply_augment(xb, info, augment_draws(len(xb), info, None, dev)), info)  # noqa: E731
    dp_fit(
        model, x[: 4 * bs].float() / 255, y[: 4 * bs], epochs=1, batch_size=bs, lr=0.05, epsilon=8.0, augment_fn=augment
    )  # warm-up
    sync(dev)
    start = time.perf_counter()
    dp_fit(model, x.float() / 255, y, epochs=epochs, batch_size=bs, lr=0.05, epsilon=8.0, augment_fn=augment)
    sync(dev)
    return epochs * n / (time.perf_counter() - start)


def bench_dp_many(arch: str, n: int, bs: int, epochs: int, dev: torch.device, count: int) -> float:
    """Images/s of ``count`` models trained together with DP-SGD (:func:`qmia.multitrain.fit_many_dp`), epsilon 8."""
    from qmia.defences import Defence
    from qmia.dp import dp_compatible
    from qmia.multitrain import fit_many_dp

    info = dataset_info(DATASET[arch])
    data = [synthetic(arch, n, dev, seed=j) for j in range(count)]
    dp = Defence("dp", epsilon=8.0)

    def run(images: int, rounds: int) -> None:
        configs = [_config(arch, images, bs, rounds, QuantSpec(), seed=j).with_(defence=dp) for j in range(count)]
        models = [
            dp_compatible(build_model(arch, info.channels, info.num_classes, info.image_size)).to(dev)
            for _ in range(count)
        ]
        fit_many_dp(models, configs, [x[:images] for x, _ in data], [y[:images] for _, y in data], progress=False)

    run(4 * bs, 1)  # warm-up
    sync(dev)
    start = time.perf_counter()
    run(n, epochs)
    sync(dev)
    return count * epochs * n / (time.perf_counter() - start)


def profile_step(arch: str, count: int, bs: int, steps: int, dev: torch.device, quant: QuantSpec) -> dict:
    """Where a training step's time goes: :mod:`torch.profiler` over ``steps`` batches of ``count`` models trained
    together (:func:`qmia.multitrain.fit_many`), after a warm-up. Returns the wall seconds, the device-busy share
    (summed kernel time over wall time; on a CPU, summed operator self time) and the top operators by self time
    (ms over the profiled steps). Profiling adds host overhead, so read shares, not speeds."""
    from torch.profiler import ProfilerActivity, profile

    data = [synthetic(arch, bs * steps, dev, seed=j) for j in range(count)]
    warm = [_config(arch, 4 * bs, bs, 1, quant, seed=j) for j in range(count)]
    fit_many(
        [_model(arch, quant, dev) for _ in range(count)],
        warm,
        [x[: 4 * bs] for x, _ in data],
        [y[: 4 * bs] for _, y in data],
        progress=False,
    )
    models = [_model(arch, quant, dev) for _ in range(count)]
    configs = [_config(arch, bs * steps, bs, 1, quant, seed=j) for j in range(count)]
    cuda = dev.type == "cuda"
    sync(dev)
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        start = time.perf_counter()
        fit_many(models, configs, [x for x, _ in data], [y for _, y in data], progress=False)
        sync(dev)
        wall = time.perf_counter() - start
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    ops = sorted(prof.key_averages(), key=lambda e: getattr(e, attr), reverse=True)
    busy = sum(getattr(e, attr) for e in ops) / 1e6
    top = [{"op": e.key[:80], "self_ms": getattr(e, attr) / 1e3, "calls": e.count} for e in ops[:15]]
    return {
        "arch": arch,
        "models": count,
        "quant": str(quant),
        "steps": steps,
        "wall_s": wall,
        "busy_share": busy / wall,
        "top": top,
    }


def accuracy(model, x_u8, y, info) -> float:
    return float((predict(model, x_u8, info).argmax(1) == y.cpu()).float().mean())


def bench_accuracy(arch: str, n: int, epochs: int, bs: int, dev: torch.device, data_root) -> dict:
    """Train ``arch`` on n real images with the plain loop and with qmia's; test on the next n."""
    from qmia.data import load_dataset

    name = DATASET[arch]
    info = dataset_info(name)
    x, y = load_dataset(name, data_root)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    tr, te = order[:n], order[n : 2 * n]
    xtr, ytr, xte, yte = x[tr].to(dev), y[tr].to(dev), x[te].to(dev), y[te].to(dev)
    out = {"arch": arch, "dataset": name, "n_train": n, "epochs": epochs, "batch_size": bs}
    torch.manual_seed(0)
    plain = build_model(arch, info.channels, info.num_classes, info.image_size).to(dev)
    seconds = plain_loop(plain, xtr, ytr, info, epochs, bs, augment=True, onecycle=True)
    out.update(plain_test_acc=accuracy(plain, xte, yte, info), plain_seconds=seconds)
    torch.manual_seed(0)
    model = _model(arch, QuantSpec(), dev)
    sync(dev)
    start = time.perf_counter()
    fit(model, TrainConfig(name, arch, n_per_split=n, epochs=epochs, batch_size=bs), xtr, ytr, progress=False)
    sync(dev)
    out.update(qmia_test_acc=accuracy(model, xte, yte, info), qmia_seconds=time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--archs", default=None, help="comma-separated (default: lenet,resnet20 on CPU; + resnet50 on CUDA)"
    )
    ap.add_argument("--batch", type=int, default=128, help="batch size (the profiles' is 128)")
    ap.add_argument("--images", type=int, default=None, help="images per timed epoch (default: 1024 CPU, 15000 CUDA)")
    ap.add_argument("--epochs", type=int, default=None, help="timed epochs (default: 1 CPU, 2 CUDA)")
    ap.add_argument("--group", type=int, default=None, help="models trained together (default: 4 CPU, 16 CUDA)")
    ap.add_argument(
        "--group50", default=None, help="comma-separated ResNet-50 group sizes (default: 2,4 on CUDA, none on CPU)"
    )
    ap.add_argument("--accuracy", action="store_true", help="also compare test accuracy on real data")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--budget", type=float, default=1e9, help="seconds after which no new measurement starts")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--cpu-table",
        action="store_true",
        help="only the single-model rows (plain, qmia at bf16 and fp32, 4-bit): the CPU table",
    )
    ap.add_argument(
        "--profile-steps",
        type=int,
        default=0,
        help="then profile this many steps of each architecture, eager and with CUDA graphs (0: none)",
    )
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    archs = (a.archs or ("lenet,resnet20,resnet50" if cuda else "lenet,resnet20")).split(",")
    n = a.images or (15000 if cuda else 1024)
    epochs = a.epochs or (2 if cuda else 1)
    group = a.group or (16 if cuda else 4)
    if cuda:
        torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    report = {
        "device": torch.cuda.get_device_name(dev) if cuda else cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": a.batch,
        "images": n,
        "epochs": epochs,
        "group": group,
        "rows": [],
        "accuracy": [],
        "profiles": [],
        "errors": [],
    }

    def save() -> None:
        if a.json:
            a.json.write_text(json.dumps(report, indent=1))

    def measure(name: str, arch: str, fn, eager: bool = False) -> None:
        if time.perf_counter() - t0 > a.budget:
            report["errors"].append(f"{arch} {name}: skipped (budget)")
            return
        try:
            os.environ["QMIA_CUDA_GRAPHS"] = "0" if eager else "1"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ips = fn()
            for w in caught:
                if "CUDA graph" in str(w.message):
                    report["errors"].append(f"{arch} {name}: {w.message}"[:500])
                    print(f"  {arch:9s} {name:22s} warning: {str(w.message)[:300]}", flush=True)
        except Exception as e:  # report and go on: one failing variant must not lose the others
            report["errors"].append(f"{arch} {name}: {type(e).__name__}: {e}"[:500])
            print(f"  {arch:9s} {name:22s} FAILED: {type(e).__name__}: {str(e)[:200]}", flush=True)
            save()
            return
        base = next((r["images_per_s"] for r in report["rows"] if r["arch"] == arch and r["loop"] == "plain"), None)
        row = {"arch": arch, "loop": name, "images_per_s": ips, "ratio_to_plain": ips / base if base else None}
        report["rows"].append(row)
        print(f"  {arch:9s} {name:22s} {ips:10.0f} img/s" + (f"   x{ips / base:.2f} plain" if base else ""), flush=True)
        save()

    print(
        f"bench_train: {report['device']}, torch {torch.__version__}, batch {a.batch}, {n} images x {epochs} epochs",
        flush=True,
    )
    mia4 = QuantSpec("mia", 4)
    mixed = [reading_spec(r, b) for b in (2, 3, 4, 6) for r in ("literal", "centred", "min-anchored")]
    groups50 = [int(g) for g in (a.group50 or ("2,4" if cuda else "")).split(",") if g]
    for arch in archs:
        arch_n = n if arch != "resnet50" else max(n // 5, 4 * a.batch)
        measure("plain", arch, lambda: bench_plain(arch, arch_n, a.batch, epochs, dev))
        if cuda:  # qmia's loop without CUDA graphs, to show what they bring
            measure(
                "qmia fp32 eager", arch, lambda: bench_qmia(arch, arch_n, a.batch, epochs, dev, QuantSpec()), eager=True
            )
        measure("qmia fp32", arch, lambda: bench_qmia(arch, arch_n, a.batch, epochs, dev, QuantSpec()))
        if not cuda:  # the CPU loop before bf16 (CUDA runs were always bf16)
            measure(
                "qmia fp32 @fp32", arch, lambda: bench_qmia(arch, arch_n, a.batch, epochs, dev, QuantSpec(), "fp32")
            )
        measure("qmia mia-4b", arch, lambda: bench_qmia(arch, arch_n, a.batch, epochs, dev, mia4))
        if a.cpu_table:
            continue
        if arch == "resnet50":
            for g in groups50:
                measure(f"qmia x{g} mia-4b", arch, lambda: bench_many(arch, arch_n, a.batch, epochs, dev, mia4, g))
        else:
            measure(
                f"qmia x{group} fp32", arch, lambda: bench_many(arch, arch_n, a.batch, epochs, dev, QuantSpec(), group)
            )
            measure(f"qmia x{group} mia-4b", arch, lambda: bench_many(arch, arch_n, a.batch, epochs, dev, mia4, group))
            measure(f"qmia x{group} mixed", arch, lambda: bench_many(arch, arch_n, a.batch, epochs, dev, mixed, group))
            if importlib.util.find_spec("opacus"):
                dp_epochs = max(1, epochs // 2)  # DP-SGD is the slowest: one timed epoch where the others take two
                measure("qmia dp-sgd", arch, lambda: bench_dp(arch, arch_n, a.batch, dp_epochs, dev))
                measure(
                    f"qmia x{group} dp-sgd", arch, lambda: bench_dp_many(arch, arch_n, a.batch, dp_epochs, dev, group)
                )
            else:
                report["errors"].append(f"{arch} dp-sgd: skipped (opacus is not installed)")
            if cuda:
                measure(
                    f"qmia x{group} mia-4b eager",
                    arch,
                    lambda: bench_many(arch, arch_n, a.batch, epochs, dev, mia4, group),
                    eager=True,
                )
    for arch in archs if a.profile_steps else []:
        for count in (1,) if arch == "resnet50" else (group,):  # as the plan trains them
            for eager in (True, False) if cuda else (True,):
                name = f"{arch} x{count} mia-4b{' eager' if eager else ''} profile"
                if time.perf_counter() - t0 > a.budget + PROFILE_SECONDS:
                    report["errors"].append(f"{name}: skipped (budget)")
                    continue
                os.environ["QMIA_CUDA_GRAPHS"] = "0" if eager else "1"
                try:
                    r = profile_step(arch, count, a.batch, a.profile_steps, dev, mia4)
                except Exception as e:
                    report["errors"].append(f"{name}: {type(e).__name__}: {e}"[:500])
                    print(f"  {name} FAILED: {type(e).__name__}: {str(e)[:200]}", flush=True)
                    continue
                r["eager"] = eager
                report["profiles"].append(r)
                print(
                    f"  {name}: {r['steps']} steps in {r['wall_s']:.2f} s, busy {r['busy_share']:.0%}; top: "
                    + "; ".join(f"{t['op']} {t['self_ms']:.0f} ms" for t in r["top"][:6]),
                    flush=True,
                )
                save()
    if a.accuracy:
        settings = [
            ("lenet", 15000 if cuda else 2000, 15 if cuda else 5),
            ("resnet20", 15000 if cuda else 1000, 15 if cuda else 3),
        ]
        for arch, acc_n, acc_epochs in settings:
            if time.perf_counter() - t0 > a.budget:
                report["errors"].append(f"{arch} accuracy: skipped (budget)")
                continue
            try:
                r = bench_accuracy(arch, acc_n, acc_epochs, a.batch, dev, a.data_root)
            except Exception as e:
                report["errors"].append(f"{arch} accuracy: {type(e).__name__}: {e}"[:500])
                print(f"  {arch} accuracy FAILED: {e}", flush=True)
                continue
            report["accuracy"].append(r)
            print(
                f"  {arch:9s} accuracy ({r['dataset']}, {acc_n} images, {acc_epochs} epochs): "
                f"plain {r['plain_test_acc']:.3f} in {r['plain_seconds']:.1f} s, "
                f"qmia {r['qmia_test_acc']:.3f} in {r['qmia_seconds']:.1f} s",
                flush=True,
            )
            save()
    report["seconds"] = time.perf_counter() - t0
    save()
    print(f"bench_train: done in {report['seconds']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
