"""Where a model was trained, in its record and in the reports: PyTorch's CPU
kernels (and so the bytes a seed gives) depend on its version, the thread
count and the CPU, so a seed rebuilds the same file on the same kind of
machine only."""
import platform

from edgebnn.bench.profile import processor

UNRECORDED = "not recorded (records before they said)"


def environment():
    """The record's fields that say what trained it."""
    import torch
    return {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, {processor()}, PyTorch CPU capability "
                       f"{torch.backends.cpu.get_cpu_capability()}"}


def kept_last_epoch(records):
    """How many of ``records`` had validation keep their last epoch: for those the budget, not
    validation, set how long training went on."""
    return sum(r["best_epoch"] == r["epochs"] for r in records)


def described(record):
    return f"{record.get('machine', UNRECORDED)}; PyTorch {record.get('torch')}, " \
        f"{record.get('threads')} thread(s)"


def trained_on(named_records):
    """A report's lines: which machine trained which of ``{name: record}``."""
    machines = {}
    for name, record in named_records.items():
        machines.setdefault(record.get("machine", UNRECORDED), []).append(name)
    return ["Trained on (a seed rebuilds the same bytes on the same kind of machine only):", ""] + \
        [f"- {machine}: {', '.join(names)}" for machine, names in machines.items()]
