"""Dask clients for batch prediction: a local cluster, an existing scheduler, or a
batch-queue cluster (SLURM / PBS / SGE through ``dask-jobqueue``).

Everything here needs the optional extra ``napari-activepick[cluster]``
(``dask[distributed]`` and ``dask-jobqueue``); without it the functions raise
:class:`~activepick.errors.ActivePickError` saying what to install. Imports of
Dask happen inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import sys

from .errors import ActivePickError

#: What to run when the optional Dask packages are missing.
EXTRA_HINT = 'pip install "napari-activepick[cluster]"'
#: Batch systems ``--cluster`` knows: name -> dask-jobqueue Job class.
JOB_CLASSES = {
    "slurm": ("dask_jobqueue.slurm", "SLURMJob", "SLURMCluster"),
    "pbs": ("dask_jobqueue.pbs", "PBSJob", "PBSCluster"),
    "sge": ("dask_jobqueue.sge", "SGEJob", "SGECluster"),
}
#: How each batch system asks for GPUs (sites differ for PBS / SGE; see docs/cluster.md).
GPU_DIRECTIVES = {"slurm": "--gres=gpu:{n}", "sge": "-l gpu={n}"}  # PBS: in resource_spec
#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 10.0
#: Environment of local worker processes, set before they start: one thread for
#: OpenMP / MKL / OpenBLAS, and NOT Dask's default ``MALLOC_TRIM_THRESHOLD_=65536``,
#: which fixes glibc's mmap threshold at 128 KiB: every tensor of the network then
#: comes from fresh, zero-filled pages, and prediction takes 1.6-1.9x the CPU time
#: (see docs/cluster.md). ``None`` unsets a variable.
WORKER_ENVIRON = {
    "MALLOC_TRIM_THRESHOLD_": None,
    "OMP_NUM_THREADS": 1,
    "MKL_NUM_THREADS": 1,
    "OPENBLAS_NUM_THREADS": 1,
}
#: glibc ``mallopt`` settings of a worker (malloc.h ``M_MMAP_THRESHOLD``,
#: ``M_TRIM_THRESHOLD``): the ceiling of glibc's own dynamic thresholds, which a plain
#: process reaches after its first large arrays; set in every worker, so that workers
#: started with Dask's malloc setting anyway (``--scheduler``, ``--cluster``) get them.
WORKER_MALLOPT = {-3: 32 * 2**20, -1: 64 * 2**20}
#: Shown in a dry-run job script where the real scheduler address will go.
PLACEHOLDER_SCHEDULER = "tcp://SCHEDULER-ADDRESS:8786"


def require(module: str, what: str):
    """Import ``module`` or raise the one-line "install the extra" error for ``what``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ActivePickError(
            f"{what} needs the optional Dask packages ({module} is not installed): {EXTRA_HINT}"
        ) from None


def local_client(workers: int):
    """A ``distributed.Client`` on a new local cluster of ``workers`` processes,
    one thread each, no dashboard, started with :data:`WORKER_ENVIRON`."""
    distributed = require("distributed", "--workers")
    import dask

    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENVIRON}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = distributed.LocalCluster(
            n_workers=int(workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )
    return distributed.Client(cluster)


def _set_malloc_thresholds() -> bool:
    """Apply :data:`WORKER_MALLOPT` through glibc; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return all(libc.mallopt(param, value) == 1 for param, value in WORKER_MALLOPT.items())
    except (OSError, AttributeError):  # musl, or no libc.so.6
        return False


def tune_worker_process(threads: int = 1) -> dict:
    """Set up a Dask worker process for prediction; call it once, before the work.

    ``threads`` torch threads (intra-op) and one inter-op thread, so that N workers
    on N cores do not oversubscribe them, and glibc's malloc thresholds of
    :data:`WORKER_MALLOPT`, whatever ``MALLOC_TRIM_THRESHOLD_`` the process started
    with. Returns ``{"threads", "interop_threads", "mallopt"}`` as now in effect.
    """
    import torch

    torch.set_num_threads(max(1, int(threads)))
    with contextlib.suppress(RuntimeError):  # set already, or inter-op work has started
        torch.set_num_interop_threads(1)
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mallopt": _set_malloc_thresholds(),
    }


def connect(address: str, *, timeout: float | None = None):
    """A client of the scheduler at ``address``; one clear error when it cannot be reached."""
    distributed = require("distributed", "--scheduler")
    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    try:
        return distributed.Client(address, timeout=f"{timeout}s")
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ActivePickError(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({reason})"
        ) from None


def jobqueue_options(
    kind: str,
    *,
    cores: int = 4,
    memory: str = "16GB",
    queue: str | None = None,
    walltime: str | None = None,
    gpus: int = 0,
    account: str | None = None,
) -> dict:
    """Keyword arguments of a dask-jobqueue cluster / job for one batch job.

    CPU jobs run ``cores`` worker processes of one thread each; GPU jobs run one
    worker process of one Dask thread per job (it owns the job's GPU); the job still
    asks for ``cores`` (SLURM ``--cpus-per-task``, PBS ``ncpus``). SGE takes
    ``account`` as its project.
    """
    if kind not in JOB_CLASSES:
        raise ActivePickError(f"unknown cluster {kind!r} (known: {', '.join(JOB_CLASSES)})")
    opts = {
        "cores": int(cores),
        "memory": str(memory),
        "processes": 1 if gpus else int(cores),
        "python": sys.executable,
        "job_extra_directives": [],
    }
    if queue:
        opts["queue"] = queue
    if walltime:
        opts["walltime"] = walltime
    if account:
        opts["project" if kind == "sge" else "account"] = account
    if gpus:
        # one Dask thread per GPU job (one task at a time on the GPU), all cores to the job
        opts["cores"] = 1
        if kind == "slurm":
            opts["job_cpu"] = int(cores)
        if kind == "pbs":
            opts["resource_spec"] = f"select=1:ncpus={int(cores)}:ngpus={int(gpus)}:mem={memory}"
        else:
            opts["job_extra_directives"].append(GPU_DIRECTIVES[kind].format(n=int(gpus)))
    return opts


def job_script(kind: str, **options) -> str:
    """The job script one ``--cluster kind`` job would submit (nothing is submitted)."""
    opts = jobqueue_options(kind, **options)
    module, job_class, _ = JOB_CLASSES[kind]
    require("dask_jobqueue", "--cluster")
    job = getattr(importlib.import_module(module), job_class)
    return job(scheduler=PLACEHOLDER_SCHEDULER, name="activepick-worker", **opts).job_script()


def jobqueue_client(kind: str, *, jobs: int = 1, **options):
    """A client of a new dask-jobqueue cluster that submits ``jobs`` batch jobs."""
    opts = jobqueue_options(kind, **options)
    require("distributed", "--cluster")
    jobqueue = require("dask_jobqueue", "--cluster")
    import distributed

    cluster_class = getattr(jobqueue, JOB_CLASSES[kind][2])
    cluster = cluster_class(scheduler_options={"dashboard_address": None}, **opts)
    cluster.scale(jobs=int(jobs))
    return distributed.Client(cluster)
