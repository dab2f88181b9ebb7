rule search:
    input:
        manifest=manifest(EXP.search_dataset),
    output:
        best=f"{R}/search/{{aug}}/best.json",
        history=f"{R}/search/{{aug}}/history.jsonl",
        population=f"{R}/search/{{aug}}/population.json",
        summary=f"{R}/search/{{aug}}/summary.json",
        cache_stats=f"{R}/search/{{aug}}/cache_stats.json",
        cost=f"{R}/search/{{aug}}/cost.json",
        provenance=f"{R}/search/{{aug}}/provenance.json",
    log:
        f"{R}/logs/search/{{aug}}.log",
    benchmark:
        f"{R}/benchmarks/search/{{aug}}.tsv"
    # the searches are the critical path: they go first when GPUs are free, before the
    # cross-entropy and baseline runs that are ready beside them from the start
    priority: 10
    retries: EXP.retries("search")
    conda:
        "../envs/augloss.yaml"
    threads: stage_threads("search")
    resources:
        **EXP.resources("search"),
    params:
        job=lambda wc: EXP.search_job(wc.aug),
        workdir=lambda wc: f"{R}/search/{wc.aug}/work",
        cache_dir=f"{R}/cache/search",
    script:
        "../scripts/search.py"


use rule search as search_random with:
    output:
        best=f"{R}/search/{{aug}}/random/best.json",
        history=f"{R}/search/{{aug}}/random/history.jsonl",
        population=f"{R}/search/{{aug}}/random/population.json",
        summary=f"{R}/search/{{aug}}/random/summary.json",
        cache_stats=f"{R}/search/{{aug}}/random/cache_stats.json",
        cost=f"{R}/search/{{aug}}/random/cost.json",
        provenance=f"{R}/search/{{aug}}/random/provenance.json",
    log:
        f"{R}/logs/search/{{aug}}-random.log",
    benchmark:
        f"{R}/benchmarks/search/{{aug}}-random.tsv"
    params:
        job=lambda wc: EXP.search_job(wc.aug, "random"),
        workdir=lambda wc: f"{R}/search/{wc.aug}/random/work",
        cache_dir=f"{R}/cache/search",


if EXP.search_lockstep:

    # search.lockstep: one job runs every augmentation's search together, each round one
    # stacked surrogate call training the next candidate of each (augloss.search.lockstep).
    # The same files as the per-augmentation rule (which it takes precedence over), each
    # search with its own work directory, state and resume; the random baselines stay apart.
    rule search_lockstep:
        input:
            manifest=manifest(EXP.search_dataset),
        output:
            **{
                name: expand(path, aug=AUGS)
                for name, path in rules.search.output.items()
            },
        log:
            f"{R}/logs/search/lockstep.log",
        benchmark:
            f"{R}/benchmarks/search/lockstep.tsv"
        priority: 10
        retries: EXP.retries("search")
        conda:
            "../envs/augloss.yaml"
        threads: stage_threads("search")
        resources:
            # the runtime of a search per search it runs (retries resume every search)
            **EXP.resources("search", runs=len(AUGS)),
        params:
            augmentations=AUGS,
            jobs=[EXP.search_job(a) for a in AUGS],
            workdirs=[f"{R}/search/{a}/work" for a in AUGS],
            cache_dir=f"{R}/cache/search",
        script:
            "../scripts/search_lockstep.py"

    ruleorder: search_lockstep > search


checkpoint evolved_losses:
    input:
        best=expand(rules.search.output.best, aug=AUGS),
    output:
        selection=f"{R}/search/evolved.json",
        provenance=f"{R}/search/evolved/provenance.json",
    log:
        f"{R}/logs/search/evolved.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        augmentations=AUGS,
        names=EXP.evolved_names(),
    script:
        "../scripts/evolved_losses.py"


rule correlation_study:
    input:
        manifest=manifest(EXP.search_dataset),
        best=expand(rules.search.output.best, aug=AUGS),
    output:
        study=f"{R}/search/correlation.json",
        provenance=f"{R}/search/correlation/provenance.json",
    log:
        f"{R}/logs/search/correlation.log",
    benchmark:
        f"{R}/benchmarks/search/correlation.tsv"
    priority: 10
    retries: EXP.retries("search")
    conda:
        "../envs/augloss.yaml"
    threads: stage_threads("search")
    resources:
        **EXP.resources("search"),
    params:
        job=EXP.correlation_job(),
        cache_dir=f"{R}/cache/search",
    script:
        "../scripts/correlation.py"
