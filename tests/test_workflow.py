"""The Snakemake workflow, driven as users drive it: `python -m snakemake` in a temp dir."""

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, job_counts, load, smk


def jobs_per_cell(stage: dict) -> int:
    """Training jobs per (dataset, augmentation, loss): one per seed, or one for all seeds."""
    return 1 if stage.get("seeds_in_one_job") else len(stage["seeds"])


def expected_jobs(cfg) -> Counter:
    """The jobs a dry run lists before any search ran: every dataset, the searches, and the runs
    of cross-entropy and the baselines in every stage (they need nothing from the searches, so
    they run while the searches run); the evolved losses' runs come once their checkpoint ran
    (evolved_losses for transfer, select_transfer for fine-tuning)."""
    augs = len(cfg["augmentations"])
    t, f = cfg["transfer"], cfg["finetune"]
    datasets = {cfg["search"]["dataset"], *t["datasets"], *f["datasets"]}
    if f.get("pretrain"):
        datasets.add(f["pretrain"]["dataset"])
    out = Counter({
        "prepare_dataset": len(datasets), "search": augs, "correlation_study": 1,
        "evolved_losses": 1, "select_transfer": 1,
        "train_transfer": len(t["datasets"]) * augs * (1 + len(t["baselines"]))
        * jobs_per_cell(t),
        "finetune": len(f["datasets"]) * augs * (1 + len(f["baselines"])) * jobs_per_cell(f),
        "table_search": 1, "table_correlation": 1, "table_stage": 2, "table_claims": 1,
        "table_specificity": 1, "table_surrogate_validity": 1, "audit": 1,
        "environment": 1, "resolved_config": 1, "all": 1})
    if f.get("pretrain"):
        out["pretrain"] = 1
    if f["model"].get("pretrained") and not f["model"].get("weights"):
        out["prefetch_weights"] = 1  # the head node fetches the published weights once
    if cfg["search"].get("baseline", "none") == "random":
        out["search_random"] = augs
    return out


def transfer_runs(cfg, evolved: list[str]) -> int:
    """The transfer runs once the searches are done: each distinct evolved loss once."""
    t = cfg["transfer"]
    losses = 1 + len(t["baselines"]) + len(evolved)
    return len(t["datasets"]) * len(cfg["augmentations"]) * losses * len(t["seeds"])


@pytest.mark.parametrize("config", ["config.yaml", "demo/config.yaml",
                                    "tests/configs/paper-smoke.yaml"])
def test_dry_run_lists_every_job_known_before_the_searches(tmp_path, config):
    proc = smk(tmp_path, "-n", "--cores", "8", "--resources", "gpu=4", "--configfile",
               str(REPO / config))
    counts = job_counts(proc.stdout)
    total = counts.pop("total")
    expected = expected_jobs(load(REPO / config))
    assert counts == expected and total == sum(expected.values())


def test_dry_run_with_the_slurm_profile(tmp_path):
    proc = smk(tmp_path, "-n", "--workflow-profile", str(REPO / "profiles" / "slurm"),
               "--configfile", str(REPO / "config.yaml"))
    out = proc.stdout + proc.stderr
    assert "rule search:" in out and "rule finetune:" in out
    assert "slurm_partition=SITE_GPU_PARTITION" in out and "gpu=1" in out
    # Every job fits a one-day partition; a search killed at its limit retries and resumes.
    runtimes = [int(m) for m in re.findall(r"runtime=(\d+)", out)]
    assert runtimes and max(runtimes) <= 24 * 60
    assert load(REPO / "config.yaml")["search"]["retries"] >= 10


def test_the_slurm_profile_works_as_a_global_profile_copied_outside_the_repository(tmp_path):
    """The README's route: copy profiles/slurm elsewhere, fill the SITE values, --profile it.
    The site values reach every job; the checkout is not touched."""
    copy = tmp_path / "augloss-slurm"
    shutil.copytree(REPO / "profiles" / "slurm", copy)
    text = (copy / "profile.yaml").read_text()
    (copy / "profile.yaml").write_text(text.replace("SITE_ACCOUNT", "proj42").replace(
        "SITE_CPU_PARTITION", "cpu").replace("SITE_GPU_PARTITION", "gpu-a100"))
    assert not list((REPO / "profiles").rglob("config.yaml"))  # Snakemake 9's profile.yaml only
    before = subprocess.run(["git", "status", "--porcelain", "--", "profiles"], cwd=REPO,
                            capture_output=True, text=True).stdout
    proc = smk(tmp_path, "-n", "--profile", str(copy), "--configfile", str(REPO / "config.yaml"))
    out = proc.stdout + proc.stderr
    assert "slurm_account=proj42" in out and "slurm_partition=gpu-a100" in out
    assert "slurm_partition=cpu" in out and "SITE_" not in out
    # profiles/default (auto-used too) overrides none of the site keys.
    default = yaml.safe_load((REPO / "profiles" / "default" / "profile.yaml").read_text())
    assert not set(default) & set(yaml.safe_load(text))
    after = subprocess.run(["git", "status", "--porcelain", "--", "profiles"], cwd=REPO,
                           capture_output=True, text=True).stdout
    assert after == before


@pytest.mark.parametrize("edit, fragment", [
    (lambda c: c["search"]["algorithm"].update(population=0), "population"),
    (lambda c: c["search"].update(popsize=3), "popsize"),
    (lambda c: c.update(augmentations=["base", "cutmix"]), "cutmix"),
    (lambda c: c["transfer"]["train"].update(epochs=-1), "epochs"),
    (lambda c: c["transfer"]["baselines"].insert(0, {"name": "bad",
                                                     "expression": "p.__class__"}),
     "transfer.baselines[0]"),
    (lambda c: c["transfer"].update(datasets=["mnist"]), "transfer.datasets[0]"),
    (lambda c: c["transfer"].update(evolved_per_augmentation=9), "evolved_per_augmentation"),
])
def test_invalid_config_fails_before_any_job_naming_the_key(tmp_path, edit, fragment):
    cfg = load(REPO / "demo" / "config.yaml")
    edit(cfg)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = smk(tmp_path, "--cores", "1", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert fragment in out
    assert not (tmp_path / "results").exists()


def test_snakefmt_is_clean():
    snakefmt = shutil.which("snakefmt") or str(Path(sys.executable).parent / "snakefmt")
    proc = subprocess.run([snakefmt, "--check", "Snakefile", "rules/"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("config", ["config.yaml", "demo/config.yaml"])
def test_snakemake_lint_finds_nothing(tmp_path, config):
    proc = smk(tmp_path, "--lint", "--configfile", str(REPO / config), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-3000:]
    assert "your workflow is in a good condition" in out


CACHES = {".venv", ".git", "__pycache__", ".pytest_cache", ".hypothesis", "results",
          "augloss.egg-info", ".snakemake"}


def repo_files() -> dict[str, int]:
    return {str(p.relative_to(REPO)): p.stat().st_mtime_ns for p in REPO.rglob("*")
            if p.is_file() and not CACHES & set(p.relative_to(REPO).parts)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo, run once end to end in a temporary working directory."""
    work = tmp_path_factory.mktemp("demo")
    shutil.copy(REPO / "demo" / "config.yaml", work / "config.yaml")
    before = repo_files()
    smk(work, "--cores", "2", "--configfile", str(work / "config.yaml"))
    work.joinpath("repo_changes.json").write_text(json.dumps(
        sorted(set(repo_files().items()) ^ set(before.items()))))
    return work


def test_demo_writes_only_under_results(demo):
    """Nothing outside the results directory, the configured data root and Snakemake's own."""
    assert {p.name for p in demo.iterdir()} <= {"results", "data", ".snakemake", "config.yaml",
                                                "repo_changes.json"}
    assert json.loads((demo / "repo_changes.json").read_text()) == []
    assert {p.name for p in (demo / "results").iterdir()} == {"demo"}


def test_demo_runs_end_to_end(demo):
    r = demo / "results" / "demo"
    for table in ("search", "correlation", "transfer", "finetune", "claims", "specificity",
                  "surrogate_validity"):
        for ext in ("md", "csv", "tex", "html"):
            assert (r / "tables" / f"{table}.{ext}").stat().st_size > 0
    claims = (r / "tables" / "claims.md").read_text()
    assert "### Claims, transfer" in claims and "### Claims, finetune" in claims
    # No table reports p = 0: an untestable cell has an empty p-value.
    import pandas as pd

    for stage in ("transfer", "finetune"):
        cells = pd.read_csv(r / "tables" / f"{stage}.csv")
        assert not (cells["p_value"] == 0).any() and not (cells["p_holm"] == 0).any()
    for plot in ("evolution", "correlation", "transfer_delta", "finetune_delta",
                 "transfer_curves", "finetune_curves", "probe_curves"):
        assert (r / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
    transfer = (r / "tables" / "transfer.md").read_text()
    assert "| ce " in transfer and "evolved[cutout]#1" in transfer
    env = json.loads((r / "provenance" / "environment.json").read_text())
    assert any(p.startswith("torch==") for p in env["pip_freeze"]) and env["snakemake"]
    selection = json.loads((r / "transfer" / "selection.json").read_text())
    ft = json.loads((r / "finetune" / "digits_5-9" / "base" / selection["selected"][0]["loss"] /
                     "seed0" / "metrics.json").read_text())
    assert ft["loss"] == selection["selected"][0]["loss"]
    assert ft["expression"] == selection["selected"][0]["expression"]
    assert "audit" in (r / "audit" / "audit.md").read_text().lower()
    # Each evolved loss trained once per cell and seed, under its first name; the tables name
    # every search that selected it.
    cfg = load(demo / "config.yaml")
    evolved = json.loads((r / "search" / "evolved.json").read_text())
    names = [e["name"] for e in evolved["losses"]]
    trained = {p.parent.parent.name for p in (r / "transfer").rglob("metrics.json")}
    assert {n for n in trained if n.startswith("evolved-")} == set(names)
    assert len(list((r / "transfer").rglob("metrics.json"))) == transfer_runs(cfg, names)
    for name, others in evolved["aliases"].items():
        shown = " = ".join(f"evolved[{o.split('-')[1]}]#{o.split('-')[2]}" for o in [name, *others])
        assert shown in transfer
    # Fine-tuning records the preprocessing it resolved from the weights, and the audit shows it.
    pre = ft["preprocessing"]
    assert pre["tag"] == "test_efficientnet.r160_in1k" and pre["overridden"] == ["image_size"]
    assert (pre["image_size"], pre["interpolation"], pre["crop_pct"]) == (16, "bicubic", 0.95)
    assert "test_efficientnet.r160_in1k's config: 16 px, bicubic" in \
        (r / "audit" / "audit.md").read_text()
    # The random-search baseline is off in the demo (test_random_baseline_... runs it).
    assert not list((r / "search").glob("*/random")) and cfg["search"]["baseline"] == "none"
    # Every run is on the CPU and complete.
    for m in r.rglob("metrics.json"):
        assert json.loads(m.read_text())["status"] in ("completed", "aborted", "diverged")


def test_demo_models_learn_and_its_search_table_states_the_noise(demo):
    """#14: cross-entropy learns in every stage (the thresholds a reader needs to trust the
    comparison), each search is large enough, and its fitness noise is reported."""
    import pandas as pd

    r = demo / "results" / "demo"
    cells = pd.read_csv(r / "tables" / "transfer.csv")
    ce = cells[cells["loss"] == "ce"].set_index("augmentation")["mean"]
    assert ce["base"] >= 0.90 and (ce >= 0.80).all(), ce.to_dict()
    search = pd.read_csv(r / "tables" / "search.csv").set_index("augmentation")
    assert search.loc["base", "ce_fitness"] >= 0.85 and (search["ce_fitness"] >= 0.70).all()
    algo = load(demo / "config.yaml")["search"]["algorithm"]  # every pool member and child
    # is at least one evaluation
    assert (search["evaluations"] >= algo["initial_pool"] + algo["children"]).all()
    assert (search["noise_seeds"] == 3).all()
    # The seed alone moves a loss's fitness; the winner's lead over CE is measured on fresh
    # seeds, a paired mean inside its 95 % interval; the top-k's spread is stated beside it.
    assert (search["fitness_noise"] > 0).all()
    testable = search["lead_p"].notna()  # a lead constant in counts (a winner equal to CE)
    assert testable.any() and search.loc[~testable, "lead_low"].isna().all()  # is untestable
    t = search[testable]
    assert ((t["lead_low"] <= t["lead"]) & (t["lead"] <= t["lead_high"])).all()
    assert (search["top_k_sd"] >= 0).all()
    assert "fitness_noise" in (r / "tables" / "search.md").read_text()
    for a in search.index:
        curve = json.loads((r / "search" / a / "summary.json").read_text())["curve"]
        best = [p["best_so_far"] for p in curve]
        assert curve[0]["children"] == 0 and best == sorted(best)
    ft = pd.read_csv(r / "tables" / "finetune.csv")
    assert ft[(ft["loss"] == "ce") & (ft["augmentation"] == "base")]["mean"].iloc[0] >= 0.80


def test_one_job_per_cell_trains_what_one_job_per_seed_trains(demo, tmp_path):
    """The demo trains every seed of a cell in one process (seeds_in_one_job): each run keeps its
    own outputs, and they are byte-identical to runs in a process of their own."""
    r = demo / "results" / "demo"
    cell = "transfer/digits/mixup/ce"
    log = (r / "logs" / cell / "seeds.log").read_text()
    cfg = load(demo / "config.yaml")
    seeds = cfg["transfer"]["seeds"]
    assert len(seeds) > 1 and all(f"{cell}/seed{s}" in log for s in seeds)
    assert (r / "benchmarks" / cell / "seeds.tsv").exists()
    assert not list((r / "benchmarks" / "transfer").rglob("seed0.tsv"))
    cfg.update(experiment="perseed")
    cfg["transfer"]["seeds_in_one_job"] = False
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    runs = [f"results/perseed/{cell}/seed{s}" for s in seeds]
    proc = smk(tmp_path, *[f"{run}/metrics.json" for run in runs], "--cores", "2",
               "--configfile", str(tmp_path / "c.yaml"))
    assert f"train_transfer {len(seeds)}" in re.sub(r"\s+", " ", proc.stdout + proc.stderr)
    for s, run in zip(seeds, runs):
        assert (tmp_path / run / "metrics.json").read_bytes() == \
            (r / cell / f"seed{s}" / "metrics.json").read_bytes()
        assert (tmp_path / run.replace("perseed/", "perseed/logs/")).with_suffix(".log").exists()


def test_random_baseline_runs_beside_every_search_and_reaches_the_table(tmp_path):
    """search.baseline: random (off in the demo, whose run time it would raise by a third), as a
    user turns it on for one run: a random search per technique, in the search table and plot."""
    cfg = load(REPO / "demo" / "config.yaml")
    cfg["experiment"] = "rnd"
    cfg["search"].update(noise_seeds=1)
    cfg["search"]["algorithm"].update(population=3, initial_pool=4, children=2, batch_children=2,
                                      log_every=2, report_every=1)
    cfg["search"]["fitness"]["main"].update(epochs=1, steps_per_epoch=4)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = tmp_path / "results" / "rnd"
    proc = smk(tmp_path, "results/rnd/tables/search.md", "results/rnd/plots/evolution.png",
               "--cores", "2", "--configfile", str(tmp_path / "c.yaml"),
               "--config", "search={baseline: random}")
    assert f"search_random {len(cfg['augmentations'])}" in re.sub(r"\s+", " ", proc.stderr)
    for a in cfg["augmentations"]:
        rnd, evo = (json.loads((r / "search" / a / d / "summary.json").read_text())
                    for d in ("random", "."))
        assert rnd["evaluations"] > 0 and rnd["config_hash"] != evo["config_hash"]
    assert "random search" in (r / "tables" / "search.md").read_text()
    assert (r / "plots" / "evolution.png").read_bytes()[:4] == b"\x89PNG"


def test_the_report_shows_the_tables_audit_and_learning_curves_as_html(demo):
    """`snakemake --report`: every table, the claims and the audit are HTML pages inside it
    (not Markdown downloads), with the numbers of the CSV tables, and the learning curves."""
    import zipfile

    import pandas as pd

    r = demo / "results" / "demo"
    smk(demo, "--report", "report.zip", "--configfile", str(demo / "config.yaml"))
    with zipfile.ZipFile(demo / "report.zip") as z:
        files = {Path(n).name: n for n in z.namelist()}
        for name in ("search.html", "transfer.html", "finetune.html", "claims.html",
                     "correlation.html", "audit.html", "transfer_curves.png",
                     "finetune_curves.png"):
            assert name in files, sorted(files)
        assert not [n for n in files if n.endswith(".md")]
        transfer = z.read(files["transfer.html"]).decode()
        audit = z.read(files["audit.html"]).decode()
    cells = pd.read_csv(r / "tables" / "transfer.csv")
    ce = cells[(cells["loss"] == "ce") & (cells["augmentation"] == "base")].iloc[0]
    assert f"{100 * ce['mean']:.2f} ± {100 * ce['std']:.2f}" in transfer
    assert "<table>" in transfer and "evolved[" in transfer
    # the cells' table and the searches' and selections' table, a header row each
    assert audit.count("<tr>") == len(pd.read_csv(r / "audit" / "audit.csv")) + 2
    assert "Searches and selections" in audit and "Resolved config:" in audit
    for name in ("config.resolved.yaml", "environment.json"):  # provenance in the report
        assert name in files, sorted(files)
    # The single-file report embeds the same pages.
    smk(demo, "--report", "report.html", "--configfile", str(demo / "config.yaml"))
    assert (demo / "report.html").stat().st_size > 0


def test_second_invocation_runs_nothing(demo):
    proc = smk(demo, "-n", "--cores", "2", "--configfile", str(demo / "config.yaml"))
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_changing_one_search_setting_reruns_only_that_branch(demo, tmp_path):
    demo = demo_copy(demo, tmp_path)  # the fixture stays as the demo left it for the others
    r = demo / "results" / "demo"

    def stamps():
        return {str(p.relative_to(r)): p.stat().st_mtime_ns
                for p in (r / "transfer").rglob("metrics.json")}

    before = stamps()
    old = {e["name"]: e["expression"]
           for e in json.loads((r / "search" / "evolved.json").read_text())["losses"]}
    cfg = load(demo / "config.yaml")
    cfg["search"]["overrides"] = {"cutout": {"algorithm": {"children": 7}}}
    (demo / "changed.yaml").write_text(yaml.safe_dump(cfg))
    proc = smk(demo, "-n", "--cores", "2", "--configfile", str(demo / "changed.yaml"))
    out = proc.stdout
    counts = job_counts(out)
    # The cutout search (and its random baseline, where one runs) rerun, then the checkpoint
    # that reads the winners; the transfer runs that follow are known only after it.
    random = cfg["search"]["baseline"] == "random"
    assert counts["search"] == 1 and counts.get("search_random", 0) == int(random)
    assert "wildcards: aug=cutout" in out and counts["evolved_losses"] == 1
    assert "prepare_dataset" not in counts and "pretrain" not in counts
    smk(demo, "--cores", "2", "--configfile", str(demo / "changed.yaml"))
    after = stamps()
    rerun = {k for k in after if after[k] != before.get(k)}
    # Only the cutout search's loss retrained, under every augmentation and seed, and only if
    # its winner changed (the searches are independent: a longer cutout search may find the
    # same winner, whose runs then stand); none if its new winner is a loss another search
    # selected, plus a loss that stops being its alias.
    new = {e["name"]: e["expression"]
           for e in json.loads((r / "search" / "evolved.json").read_text())["losses"]}
    retrained = {n for n in new if n not in old
                 or (n.startswith("evolved-cutout-") and new[n] != old[n])}
    assert {k.split("/")[3] for k in rerun} == retrained
    assert len(rerun) == len(retrained) * len(cfg["augmentations"]) * len(cfg["transfer"]["seeds"])
    assert all(after[k] == before[k] for k in before if "/ce/" in k)


STAGE_TARGETS = {  # the rules each stage target lists before any search ran (config.yaml)
    "search_all": {"prepare_dataset", "search", "evolved_losses", "correlation_study"},
    "transfer_all": {"prepare_dataset", "search", "evolved_losses", "select_transfer",
                     "train_transfer"},
    "finetune_all": {"prepare_dataset", "search", "evolved_losses", "select_transfer",
                     "finetune", "prefetch_weights"},
    "tables_all": set(expected_jobs(load(REPO / "config.yaml"))) - {"environment", "all"},
    "data_all": {"prepare_dataset", "prefetch_weights"},
}
PREPARED = {"search_all": 1, "transfer_all": 2, "finetune_all": 4, "tables_all": 5,
            "data_all": 5}  # datasets each target prepares (config.yaml)


@pytest.mark.parametrize("target", sorted(STAGE_TARGETS))
def test_stage_targets_list_their_stage_and_only_what_it_needs(tmp_path, target):
    proc = smk(tmp_path, target, "-n", "--cores", "8", "--resources", "gpu=4",
               "--configfile", str(REPO / "config.yaml"))
    counts = job_counts(proc.stdout)
    counts.pop("total")
    assert set(counts) == STAGE_TARGETS[target] | {target}
    expected = expected_jobs(load(REPO / "config.yaml"))
    for rule in counts.keys() - {target, "prepare_dataset"}:
        assert counts[rule] == expected[rule], rule
    assert counts["prepare_dataset"] == PREPARED[target]


def demo_copy(demo, tmp_path) -> Path:
    """A copy of the finished demo (results, data, Snakemake's metadata) to change freely."""
    work = tmp_path / "w"
    shutil.copytree(demo, work, symlinks=True)
    return work


def test_adding_a_seed_trains_that_seed_only(demo, tmp_path):
    """seeds_in_one_job (the demo's): the cell's job reruns for its new output, but restores
    the seeds that finished before (same job, code and data) byte for byte and trains only the
    new one. Without seeds_in_one_job Snakemake's own per-seed jobs do the same."""
    work = demo_copy(demo, tmp_path)
    cfg = load(work / "config.yaml")
    seeds = cfg["transfer"]["seeds"]
    assert cfg["transfer"]["seeds_in_one_job"]
    new = max(seeds) + 1
    cfg["transfer"]["seeds"] = [*seeds, new]
    (work / "more.yaml").write_text(yaml.safe_dump(cfg))
    cell = "results/demo/transfer/digits/base/ce"
    before = {s: (work / cell / f"seed{s}" / "metrics.json").read_bytes() for s in seeds}
    proc = smk(work, *[f"{cell}/seed{s}/metrics.json" for s in [*seeds, new]], "--cores", "2",
               "--configfile", str(work / "more.yaml"))
    assert "train_transfer 1" in re.sub(r"\s+", " ", proc.stdout + proc.stderr)
    log = (work / "results/demo/logs/transfer/digits/base/ce/seeds.log").read_text()
    for s in seeds:
        assert (work / cell / f"seed{s}" / "metrics.json").read_bytes() == before[s]
        assert f"run {cell}/seed{s}: finished before with the same job" in log
    assert f"run {cell}/seed{new}\n" in log.replace("\r", "")
    assert json.loads((work / cell / f"seed{new}" / "metrics.json").read_text())["seed"] == new
    # The whole workflow: every transfer cell's job reruns for its new seed (a job per cell),
    # and no fine-tuning run (their seeds did not change).
    counts = job_counts(smk(work, "-n", "--cores", "2", "--configfile",
                            str(work / "more.yaml")).stdout)
    assert "finetune" not in counts and "search" not in counts
    assert counts["train_transfer"] == len(list((work / "results/demo/transfer").glob("*/*/*"))) - 1


def test_a_new_selection_reruns_only_the_finetunes_of_newly_selected_losses(demo, tmp_path):
    """Fine-tuning runs are keyed by the selected loss's own name, and read that loss from its
    search's best.json: a rewritten selection.json reruns no run of a loss it kept."""
    work = demo_copy(demo, tmp_path)
    r = work / "results" / "demo"
    cfg = load(work / "config.yaml")
    old = [s["loss"] for s in json.loads((r / "transfer" / "selection.json").read_text())
           ["selected"]]
    cfg["finetune"]["from_transfer"] = len(old) + 1
    (work / "more.yaml").write_text(yaml.safe_dump(cfg))
    smk(work, "--until", "select_transfer", "--cores", "2", "--configfile",
        str(work / "more.yaml"))
    new = [s["loss"] for s in json.loads((r / "transfer" / "selection.json").read_text())
           ["selected"]]
    assert new[:len(old)] == old and len(new) == len(old) + 1
    out = smk(work, "-n", "--cores", "2", "--configfile", str(work / "more.yaml")).stdout
    counts = job_counts(out)
    f = cfg["finetune"]
    assert counts["finetune"] == len(f["datasets"]) * len(cfg["augmentations"]) * \
        jobs_per_cell(f)
    listed = re.findall(r"rule finetune:.*?wildcards: ([^\n]+)", out, re.S)
    assert listed and all(f"loss={new[-1]}" in w for w in listed), listed
    assert "train_transfer" not in counts and "search" not in counts


SOCKETS_OFF = '''
import os, socket
_connect = socket.socket.connect
def _refuse(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        with open(os.environ["AUGLOSS_TEST_NET_LOG"], "a") as f:
            f.write(f"{os.getpid()} {address}\\n")
        raise OSError("network refused by the air-gapped test")
    return _connect(self, address)
socket.socket.connect = _refuse
'''


def test_the_air_gapped_route_prepares_everything_first_and_never_again(demo, tmp_path):
    """The README's route: `data_all` on a connected machine (the demo fixture ran it as part
    of the whole workflow), the README's copy command, then the workflow on the copy (the
    demo's pretraining, a fine-tuning and a transfer job) with every network connection
    refused: no dataset is prepared again and no job touches the network."""
    readme = (REPO / "README.md").read_text()
    assert "python -m snakemake --cores 2 data_all" in readme
    copy = "tar -cf - data results/paper/data | ssh cluster 'tar -xf - -C augloss'"
    assert copy in readme
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    local = copy.replace("paper", "demo").replace("ssh cluster 'tar -xf - -C augloss'",
                                                  f"tar -xf - -C {cluster}")
    (demo / "data").mkdir(exist_ok=True)  # the demo's digits come with scikit-learn
    subprocess.run(["bash", "-o", "pipefail", "-c", local], cwd=demo, check=True)
    assert (cluster / "results" / "demo" / "data" / "digits.json").is_file()
    shutil.copy(demo / "config.yaml", cluster / "config.yaml")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SOCKETS_OFF)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"),
           "AUGLOSS_TEST_NET_LOG": str(tmp_path / "net.log")}
    dry = smk(cluster, "data_all", "-n", "--configfile", str(cluster / "config.yaml"), env=env)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    cfg = load(cluster / "config.yaml")
    targets = ["results/demo/transfer/digits/base/ce/seed0/metrics.json",
               f"results/demo/finetune/{cfg['finetune']['datasets'][0].replace(':', '_')}"
               "/base/ce/seed0/metrics.json"]
    proc = smk(cluster, *targets, "--cores", "2", "--configfile", str(cluster / "config.yaml"),
               env=env)
    stats = job_counts(proc.stdout + proc.stderr)
    assert "prepare_dataset" not in stats and {"train_transfer", "finetune"} <= set(stats)
    assert not (tmp_path / "net.log").exists()
    # the check bites: a job that does connect is refused and logged
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection("
                            "('127.0.0.1', 9), timeout=1)"], env=env, capture_output=True)
    assert probe.returncode != 0 and (tmp_path / "net.log").exists()


def readme_command(marker: str) -> list[str]:
    """The README command on the line after the comment ``marker`` (continuations joined),
    without its leading ``python -m snakemake``."""
    import shlex

    lines = (REPO / "README.md").read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(marker)) + 1
    text = lines[i]
    while text.endswith("\\"):
        i += 1
        text = text[:-1] + " " + lines[i].strip()
    words = shlex.split(text)
    assert words[:3] == ["python", "-m", "snakemake"], text
    return words[3:]


def test_the_readmes_regeneration_and_report_commands_work_for_the_demo(demo, tmp_path):
    """As written in the README: every table rule reruns (the claims, specificity and validity
    tables too, not only the stage tables), and the demo's report builds."""
    work = demo_copy(demo, tmp_path)
    tables = work / "results" / "demo" / "tables"
    before = {p.name: p.stat().st_mtime_ns for p in tables.glob("*.md")}
    proc = smk(work, *readme_command("# the same for the demo"))
    counts = job_counts(proc.stdout + proc.stderr)
    assert {"table_search", "table_correlation", "table_stage", "table_claims",
            "table_specificity", "table_surrogate_validity", "audit"} <= set(counts)
    assert not {"search", "train_transfer", "finetune"} & set(counts)
    after = {p.name: p.stat().st_mtime_ns for p in tables.glob("*.md")}
    assert set(after) == set(before) and all(after[k] > before[k] for k in before), after
    report = next(line for line in (REPO / "README.md").read_text().splitlines()
                  if "--configfile demo/config.yaml --report" in line).split("#")[0].split()
    smk(work, *report[3:])
    assert (work / report[-1]).stat().st_size > 0


def _summary_files(proc) -> set[str]:
    """The output files a ``--summary`` lists (its first column)."""
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file"))
    return {line.split("\t")[0] for line in lines[start + 1:] if line.strip()}


@pytest.mark.parametrize("config", ["config.yaml", "demo/config.yaml"])
def test_lockstep_searches_leave_the_dag_outputs_unchanged(tmp_path, config):
    """search.lockstep: one search_lockstep job in place of the per-augmentation searches, and
    every other job and every output file the same."""
    cfg = load(REPO / config)
    cfg["search"]["lockstep"] = True
    (tmp_path / "lock.yaml").write_text(yaml.safe_dump(cfg))
    args = ["--cores", "8", "--resources", "gpu=4", "--configfile"]
    plain = smk(tmp_path, "-n", *args, str(REPO / config))
    lock = smk(tmp_path, "-n", *args, str(tmp_path / "lock.yaml"))
    expected = expected_jobs(cfg)
    expected.pop("search")
    counts = job_counts(lock.stdout)
    counts.pop("total")
    assert counts == expected + Counter({"search_lockstep": 1})
    files = [_summary_files(smk(tmp_path, "--summary", *args, c))
             for c in (str(REPO / config), str(tmp_path / "lock.yaml"))]
    assert files[0] == files[1] and len(files[0]) > 20
    assert job_counts(plain.stdout)["search"] == len(cfg["augmentations"])


def test_lockstep_searches_write_what_separate_search_jobs_write(tmp_path):
    """The demo's searches (cut short) as separate jobs and as one lockstep job: the same
    histories, populations, winners and summaries, byte for byte, and the cost record."""
    cfg = load(REPO / "demo" / "config.yaml")
    cfg["augmentations"] = ["base", "mixup", "randaugment"]
    cfg["search"].update(noise_seeds=1)
    cfg["search"]["algorithm"].update(population=3, initial_pool=5, children=2,
                                      batch_children=1, pool_batch=2, log_every=2,
                                      report_every=1)
    cfg["search"]["fitness"]["main"].update(epochs=1, steps_per_epoch=3)
    out = {}
    for name, lockstep in (("apart", False), ("lock", True)):
        cfg["experiment"] = name
        cfg["search"]["lockstep"] = lockstep
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        targets = [f"results/{name}/search/{a}/{f}" for a in cfg["augmentations"]
                   for f in ("history.jsonl", "best.json", "cost.json")]
        proc = smk(tmp_path, *targets, "--cores", "2", "--configfile",
                   str(tmp_path / f"{name}.yaml"))
        jobs = re.sub(r"\s+", " ", proc.stderr)
        assert ("search_lockstep 1" in jobs) == lockstep, jobs[-2000:]
        out[name] = tmp_path / "results" / name / "search"
    for a in cfg["augmentations"]:
        for f in ("history.jsonl", "population.json", "best.json", "summary.json"):
            assert (out["apart"] / a / f).read_bytes() == (out["lock"] / a / f).read_bytes(), \
                (a, f)
        cost = json.loads((out["lock"] / a / "cost.json").read_text())
        assert cost["version"] == 1 and cost["phases"]["main"]["trainings"] > 0
        prov = json.loads((out["lock"] / a / "provenance.json").read_text())
        assert prov["lockstep"] == cfg["augmentations"]
