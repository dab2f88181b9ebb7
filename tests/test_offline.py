"""Offline compute nodes: the head node fetches datasets and weights once; jobs never download,
and refuse a dataset or weights file that differs from what was fetched."""

import hashlib
import os
import socket

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from augloss import models, names, runs, runtime, workflow
from augloss.io import read_json, write_json
from augloss.manifest import DataMismatch
from tests.helpers import REPO, load, smk

MODEL = {"name": "timm:test_efficientnet", "tag": "r160_in1k", "pretrained": True}


@pytest.fixture
def no_network(monkeypatch):
    """Every way out to the network raises, and is recorded."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network access is disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


@pytest.fixture
def fake_hub(monkeypatch):
    """huggingface_hub.hf_hub_download writing a real timm weights file (no network here)."""
    calls = []

    def download(repo_id, filename, local_dir=None, **kwargs):
        calls.append((repo_id, filename, local_dir))
        torch.manual_seed(0)
        path = os.path.join(local_dir, filename)
        models.save_weights(models.create("timm:test_efficientnet", 1000), path)
        return path

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return calls


def test_prefetch_puts_the_weights_under_the_data_root(tmp_path, fake_hub):
    m = models.prefetch_weights(MODEL, tmp_path / "data")
    folder = tmp_path / "data" / "weights" / "test_efficientnet.r160_in1k"
    assert fake_hub == [("timm/test_efficientnet.r160_in1k", "model.safetensors", str(folder))]
    assert m["file"] == str(folder / "model.safetensors")
    assert m["sha256"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert m["source"] == "hf-hub:timm/test_efficientnet.r160_in1k"
    assert m["model"] == "test_efficientnet.r160_in1k"


def test_fine_tune_job_runs_with_the_network_impossible(tmp_path, fake_hub, no_network):
    manifest = tmp_path / "weights.json"
    write_json(manifest, models.prefetch_weights(MODEL, tmp_path / "data"))
    job = runs.Job(stage="finetune", dataset="digits:5-9", augmentation="base",
                   loss=workflow.resolve_loss("ce", None, None),
                   model={**MODEL, "weights": None}, seed=0, data_root=str(tmp_path),
                   train={"epochs": 1, "steps_per_epoch": 2, "batch_size": 16,
                          "eval_batch_size": 300, "optimizer": "adam", "lr": 0.003},
                   augment={"finetune": True}, preprocessing={"image_size": 32})
    with runtime.job_context(str(tmp_path / "job.log"), 1, 0) as dev:
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        job.model["weights"] = workflow.prefetched_weights(str(manifest))
        m = runs.run(job, tmp_path / "run", device=dev)
    assert m["status"] == "completed" and m["preprocessing"]["pretrained"]
    assert m["preprocessing"]["weights_file"] == "model.safetensors"
    assert no_network == []  # nothing tried to reach the network


def test_the_socket_guard_catches_a_download(no_network):
    """The control: a real download attempt through the standard library is caught."""
    import urllib.request

    with pytest.raises(OSError):
        urllib.request.urlopen("https://huggingface.co/timm", timeout=5)
    assert no_network


def test_swapped_weights_file_is_refused(tmp_path, fake_hub):
    manifest = tmp_path / "weights.json"
    write_json(manifest, models.prefetch_weights(MODEL, tmp_path / "data"))
    path = read_json(manifest)["file"]
    raw = bytearray(open(path, "rb").read())
    raw[-1] ^= 1
    open(path, "wb").write(bytes(raw))
    with pytest.raises(DataMismatch, match="model.safetensors has SHA-256"):
        workflow.prefetched_weights(str(manifest))


def image_folder(root, n_per_class=6, classes=("a", "b")):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n_per_class):
                img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.png")
    return root


def test_manifest_hashes_file_contents_and_names_a_swapped_file(tmp_path):
    folder = image_folder(tmp_path / "imgs")
    name = f"imagefolder:{folder}"
    manifest = workflow.prepare_dataset(name, str(tmp_path), ["train", "val", "test"])
    files = manifest["files"]
    assert len(files) == 24 and all(len(v["sha256"]) == 64 for v in files.values())
    write_json(tmp_path / "m.json", manifest)
    workflow.verify_dataset(str(tmp_path / "m.json"), str(tmp_path))  # unchanged: accepted
    swapped = folder / "train" / "b" / "3.png"
    swapped.write_bytes((folder / "train" / "a" / "3.png").read_bytes())  # a wrong copy
    with pytest.raises(DataMismatch, match=f"{swapped} has"):
        workflow.verify_dataset(str(tmp_path / "m.json"), str(tmp_path))
    swapped.unlink()
    with pytest.raises(DataMismatch, match=f"{swapped} is missing"):
        workflow.verify_dataset(str(tmp_path / "m.json"), str(tmp_path))


def test_a_run_refuses_a_swapped_dataset_file(tmp_path):
    """The workflow: prepare, swap one image, then a training job fails naming the file."""
    folder = image_folder(tmp_path / "imgs", n_per_class=12)
    cfg = load(REPO / "demo" / "config.yaml")
    cfg["experiment"] = "swap"
    cfg["transfer"]["datasets"] = [f"imagefolder:{folder}"]
    cfg["transfer"]["train"].update(epochs=1, steps_per_epoch=1)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    slug = names.slug(f"imagefolder:{folder}")
    smk(tmp_path, f"results/swap/data/{slug}.json", "--cores", "1", "--configfile",
        str(tmp_path / "c.yaml"))
    swapped = folder / "test" / "a" / "0.png"
    swapped.write_bytes((folder / "test" / "b" / "0.png").read_bytes())
    run = f"results/swap/transfer/{slug}/base/ce/seed0/metrics.json"
    proc = smk(tmp_path, run, "--cores", "1", "--resources", "gpu=0", "--configfile",
               str(tmp_path / "c.yaml"), check=False)
    assert proc.returncode != 0
    # The demo trains both seeds of a cell in one job: one log, and neither run's metrics.
    log = (tmp_path / f"results/swap/logs/transfer/{slug}/base/ce/seeds.log").read_text()
    assert f"{swapped} has SHA-256" in log
    assert not (tmp_path / run).exists() and not (tmp_path / run.replace("seed0", "seed1")).exists()
