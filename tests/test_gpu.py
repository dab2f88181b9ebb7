"""The GPU-slot allocator, with fake device ids (no GPU needed)."""

import multiprocessing as mp
import time

import pytest

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


def test_pool_rules_and_cpu_and_slurm():
    assert gpu_pool({"SMK_GPU_IDS": "2,3"}) == ["2", "3"]
    assert gpu_pool({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0"}) is None
    assert gpu_pool({"CUDA_VISIBLE_DEVICES": "1,5"}) == ["1", "5"]
    env = {"SMK_GPU_IDS": "0,1"}
    with gpu_slots(0, environ=env) as ids:
        assert ids == [] and env["CUDA_VISIBLE_DEVICES"] == ""
    env = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "3"}
    with gpu_slots(1, environ=env) as ids:
        assert ids == ["3"] and env["CUDA_VISIBLE_DEVICES"] == "3"  # untouched under SLURM
    with pytest.raises(RuntimeError, match="pool has 2"):
        with gpu_slots(3, environ={"SMK_GPU_IDS": "0,1"}):
            pass


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
