"""The GPU-slot allocator, with fake device ids (no GPU needed)."""

import multiprocessing as mp
import os
import time

import pytest
import torch

from augloss.gpu import gpu_pool, gpu_slots


def _worker(lock_dir, n, hold, queue):
    env = {"SMK_GPU_IDS": "0,1,2,3"}
    with gpu_slots(n, lock_dir=lock_dir, environ=env) as ids:
        start = time.monotonic()
        assert env["CUDA_VISIBLE_DEVICES"] == ",".join(ids)
        time.sleep(hold)
        queue.put((tuple(ids), start, time.monotonic()))


def test_concurrent_processes_never_share_a_device(tmp_path):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    sizes = [1, 2, 1, 1, 2, 1, 1, 1]
    procs = [ctx.Process(target=_worker, args=(tmp_path, n, 0.3, queue)) for n in sizes]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    runs = [queue.get(timeout=5) for _ in procs]
    assert sorted(len(ids) for ids, _, _ in runs) == sorted(sizes)
    for i, (ids_a, s_a, e_a) in enumerate(runs):
        assert len(set(ids_a)) == len(ids_a)
        for ids_b, s_b, e_b in runs[i + 1:]:
            if s_a < e_b and s_b < e_a:  # overlapping in time
                assert not set(ids_a) & set(ids_b)


def test_a_crashed_holder_releases_its_device(tmp_path):
    ctx = mp.get_context("fork")

    def crash():
        with gpu_slots(1, lock_dir=tmp_path, environ={"SMK_GPU_IDS": "0"}):
            raise SystemExit(3)

    p = ctx.Process(target=crash)
    p.start()
    p.join(10)
    assert p.exitcode == 3
    with gpu_slots(1, lock_dir=tmp_path, timeout=2, environ={"SMK_GPU_IDS": "0"}) as ids:
        assert ids == ["0"]


def test_pool_rules_and_cpu_and_slurm(tmp_path):
    assert gpu_pool({"SMK_GPU_IDS": "2,3"}) == ["2", "3"]
    assert gpu_pool({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0"}) == ["0"]
    assert gpu_pool({"CUDA_VISIBLE_DEVICES": "1,5"}) == ["1", "5"]
    env = {"SMK_GPU_IDS": "0,1"}
    with gpu_slots(0, environ=env) as ids:
        assert ids == [] and env["CUDA_VISIBLE_DEVICES"] == ""
    env = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "3"}
    with gpu_slots(1, environ=env, lock_dir=tmp_path) as ids:
        assert ids == ["3"] and env["CUDA_VISIBLE_DEVICES"] == "3"  # SLURM's bound device
    env = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "3"}
    with gpu_slots(0, environ=env) as ids:  # gpu: 0 under SLURM too: the CPU, GPUs hidden
        assert ids == [] and env["CUDA_VISIBLE_DEVICES"] == ""
    with pytest.raises(RuntimeError, match="pool has"):
        with gpu_slots(3, environ={"SMK_GPU_IDS": "0,1"}):
            pass
    with pytest.raises(RuntimeError, match="SLURM bound none to job 7"):
        with gpu_slots(1, environ={"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": ""}):
            pass


def test_local_jobs_inside_one_allocation_get_distinct_gpus(tmp_path):
    """Snakemake run locally inside a 4-GPU allocation (salloc): its jobs share SLURM_JOB_ID
    and claim distinct bound devices through the allocation's own lock files."""
    from augloss.gpu import default_lock_dir

    env = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert default_lock_dir(env).name.endswith("-slurm7")
    a, b = dict(env), dict(env)
    with gpu_slots(1, environ=a, lock_dir=tmp_path) as first:
        with gpu_slots(1, environ=b, lock_dir=tmp_path) as second:
            assert first != second and {a["CUDA_VISIBLE_DEVICES"],
                                        b["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}


def test_waiting_times_out_when_all_devices_are_held(tmp_path):
    env = {"SMK_GPU_IDS": "0"}
    with gpu_slots(1, lock_dir=tmp_path, environ=env):
        ctx = mp.get_context("fork")
        queue = ctx.Queue()

        def try_claim():
            try:
                with gpu_slots(1, lock_dir=tmp_path, timeout=1.5, environ={"SMK_GPU_IDS": "0"}):
                    queue.put("claimed")
            except TimeoutError:
                queue.put("timeout")

        p = ctx.Process(target=try_claim)
        p.start()
        p.join(20)
        assert queue.get(timeout=5) == "timeout"


def test_slurm_binding_wins_over_smk_gpu_ids(tmp_path):
    """Inside a SLURM job a stray SMK_GPU_IDS never overrides SLURM's own GPU binding."""
    env = {"SLURM_JOB_ID": "7", "SMK_GPU_IDS": "0,1,2,3", "CUDA_VISIBLE_DEVICES": "2"}
    assert gpu_pool(env) == ["2"]
    with gpu_slots(1, environ=env, lock_dir=tmp_path) as ids:
        assert ids == ["2"] and env["CUDA_VISIBLE_DEVICES"] == "2"


def test_a_gpu_job_without_cuda_stops_unless_the_cpu_is_chosen(tmp_path, monkeypatch):
    """job_context: gpus=0 is the CPU; gpus=1 without usable CUDA raises one line naming the
    cause; cpu_fallback runs on the CPU and says so in runtime.current()."""
    from augloss import runtime

    monkeypatch.setenv("SMK_GPU_IDS", "0")
    monkeypatch.setenv("SMK_GPU_LOCK_DIR", str(tmp_path / "locks"))
    with runtime.job_context(str(tmp_path / "a.log"), 1, 0) as device:
        assert device == "cpu" and runtime.current()["gpus_requested"] == 0
    with pytest.raises(runtime.GPUUnavailable) as err:
        with runtime.job_context(str(tmp_path / "b.log"), 1, 1):
            pass
    message = str(err.value)
    assert "\n" not in message and "cannot use CUDA" in message and "driver:" in message
    assert "CUDA_VISIBLE_DEVICES='0'" in message
    with runtime.job_context(str(tmp_path / "c.log"), 1, 1, cpu_fallback=True) as device:
        assert device == "cpu"
        assert runtime.current() == {"gpus_requested": 1, "device": "cpu", "cpu_fallback": True}
    assert runtime.current() == {}
    assert "cpu_fallback: running on the CPU" in (tmp_path / "c.log").read_text()


def test_the_driver_each_cuda_build_needs_is_stated():
    from augloss import runtime

    assert runtime.MIN_DRIVER[13].startswith("580")
    major = int(torch.version.cuda.split(".")[0]) if torch.version.cuda else None
    assert major is None or major in runtime.MIN_DRIVER


def test_gpus_slurm_binds_through_gres_count_as_given(tmp_path, monkeypatch):
    """A GRES-only site's advice sets gpu: 0 beside gres (README); SLURM still binds a GPU, and
    the job must use it, not fall to the CPU: it counts as given, so without CUDA it stops."""
    from augloss import runtime

    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("SMK_GPU_LOCK_DIR", str(tmp_path / "locks"))
    assert runtime.gres_gpus("gpu:a100:2") == 2 and runtime.gres_gpus("gpu") == 1
    assert runtime.gres_gpus(None) == 0 and runtime.gres_gpus("shard:1") == 0
    with pytest.raises(runtime.GPUUnavailable, match="job given 1 GPU"):
        with runtime.job_context(str(tmp_path / "a.log"), 1, 0, gres="gpu:a100:1"):
            pass
    # no gres, gpu 0: the CPU as asked, the bound GPU hidden
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with runtime.job_context(str(tmp_path / "b.log"), 1, 0) as device:
        assert device == "cpu" and os.environ["CUDA_VISIBLE_DEVICES"] == ""
