rule table_search:
    input:
        summaries=expand(rules.search.output.summary, aug=AUGS),
        best=expand(rules.search.output.best, aug=AUGS),
        costs=expand(rules.search.output.cost, aug=AUGS),
        random=random_summaries(),
    output:
        md=f"{R}/tables/search.md",
        html=report(
            f"{R}/tables/search.html",
            caption="../report/search.rst",
            category="Tables",
            subcategory="Search",
        ),
        csv=f"{R}/tables/search.csv",
        tex=f"{R}/tables/search.tex",
        cost_md=f"{R}/tables/search_cost.md",
        cost_csv=f"{R}/tables/search_cost.csv",
        evolution=report(
            f"{R}/plots/evolution.png",
            caption="../report/evolution.rst",
            category="Plots",
            subcategory="Search",
        ),
        probe=report(
            f"{R}/plots/probe_curves.png",
            caption="../report/probe.rst",
            category="Plots",
            subcategory="Search",
        ),
    log:
        f"{R}/logs/tables/search.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        augmentations=AUGS,
    script:
        "../scripts/table_search.py"


rule table_correlation:
    input:
        study=rules.correlation_study.output.study,
    output:
        md=f"{R}/tables/correlation.md",
        html=report(
            f"{R}/tables/correlation.html",
            caption="../report/correlation.rst",
            category="Tables",
            subcategory="Search",
        ),
        csv=f"{R}/tables/correlation.csv",
        tex=f"{R}/tables/correlation.tex",
        plot=report(
            f"{R}/plots/correlation.png",
            caption="../report/correlation.rst",
            category="Plots",
            subcategory="Search",
        ),
    log:
        f"{R}/logs/tables/correlation.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    script:
        "../scripts/table_correlation.py"


rule table_stage:
    input:
        metrics=lambda wc: stage_runs(wc.stage),
        evolved=rules.evolved_losses.output.selection,
    output:
        md=f"{R}/tables/{{stage}}.md",
        html=report(
            f"{R}/tables/{{stage}}.html",
            caption="../report/comparison.rst",
            category="Tables",
            subcategory="{stage}",
        ),
        csv=f"{R}/tables/{{stage}}.csv",
        tex=f"{R}/tables/{{stage}}.tex",
        delta=report(
            f"{R}/plots/{{stage}}_delta.png",
            caption="../report/delta.rst",
            category="Plots",
            subcategory="{stage}",
        ),
        curves=report(
            f"{R}/plots/{{stage}}_curves.png",
            caption="../report/curves.rst",
            category="Plots",
            subcategory="{stage}",
        ),
    log:
        f"{R}/logs/tables/{{stage}}.log",
    wildcard_constraints:
        stage="|".join(STAGES),
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        **EXP.table_params(),
    script:
        "../scripts/table_stage.py"


rule table_claims:
    input:
        metrics=all_runs,
        evolved=rules.evolved_losses.output.selection,
    output:
        md=f"{R}/tables/claims.md",
        html=report(
            f"{R}/tables/claims.html",
            caption="../report/claims.rst",
            category="Tables",
            subcategory="Claims",
        ),
        csv=f"{R}/tables/claims.csv",
        tex=f"{R}/tables/claims.tex",
    log:
        f"{R}/logs/tables/claims.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        **EXP.table_params(),
        stages=STAGES,
    script:
        "../scripts/table_claims.py"


rule table_specificity:
    input:
        metrics=all_runs,
        evolved=rules.evolved_losses.output.selection,
    output:
        md=f"{R}/tables/specificity.md",
        html=report(
            f"{R}/tables/specificity.html",
            caption="../report/specificity.rst",
            category="Tables",
            subcategory="Claims",
        ),
        csv=f"{R}/tables/specificity.csv",
        tex=f"{R}/tables/specificity.tex",
    log:
        f"{R}/logs/tables/specificity.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        **EXP.table_params(),
        stages=STAGES,
        permutations=10000,
        seed=0,
    script:
        "../scripts/table_specificity.py"


rule table_surrogate_validity:
    input:
        study=rules.correlation_study.output.study,
        metrics=stage_metrics(experiment.searched_stage()),
        evolved=rules.evolved_losses.output.selection,
    output:
        md=f"{R}/tables/surrogate_validity.md",
        html=report(
            f"{R}/tables/surrogate_validity.html",
            caption="../report/surrogate_validity.rst",
            category="Tables",
            subcategory="Search",
        ),
        csv=f"{R}/tables/surrogate_validity.csv",
        tex=f"{R}/tables/surrogate_validity.tex",
    log:
        f"{R}/logs/tables/surrogate_validity.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        **EXP.validity_params(),
    script:
        "../scripts/table_surrogate_validity.py"


rule resolved_config:
    output:
        config=report(
            f"{R}/config.resolved.yaml",
            caption="../report/resolved_config.rst",
            category="Provenance",
        ),
    log:
        f"{R}/logs/provenance/config.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        # every default filled and every --config override applied; a change reruns this job
        # (and the audit, which names the file by its hash)
        config=experiment.canonical(EXP.config),
        overrides=experiment.canonical(dict(workflow.config_settings.config)),
    script:
        "../scripts/resolved_config.py"


rule audit:
    input:
        metrics=all_runs,
        evolved=rules.evolved_losses.output.selection,
        # the jobs before training: each search (and random baseline), the correlation study,
        # the evolved_losses checkpoint and every selection
        jobs=[
            *expand(rules.search.output.provenance, aug=AUGS),
            *(
                expand(rules.search_random.output.provenance, aug=AUGS)
                if EXP.random_baseline
                else []
            ),
            rules.correlation_study.output.provenance,
            rules.evolved_losses.output.provenance,
            *[
                getattr(rules, f"select_{s}").output.provenance
                for s in EXP.selecting_stages
            ],
        ],
        resolved_config=rules.resolved_config.output.config,
    output:
        md=f"{R}/audit/audit.md",
        html=report(
            f"{R}/audit/audit.html", caption="../report/audit.rst", category="Audit"
        ),
        csv=f"{R}/audit/audit.csv",
    log:
        f"{R}/logs/tables/audit.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    params:
        expected_seeds=EXP.seeds(),
    script:
        "../scripts/audit.py"


rule environment:
    output:
        env=report(
            f"{R}/provenance/environment.json",
            caption="../report/environment.rst",
            category="Provenance",
        ),
    log:
        f"{R}/logs/provenance/environment.log",
    localrule: True
    conda:
        "../envs/augloss.yaml"
    script:
        "../scripts/environment.py"
