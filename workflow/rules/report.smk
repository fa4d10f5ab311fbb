# Stage 6: tables beside the published figures, and figures.


rule nb201_table:
    input:
        search_records("nb201"),
    output:
        csv="<results>/tables/nb201.csv",
        md="<results>/tables/nb201.md",
        html=report(
            "<results>/tables/nb201.html",
            caption="../report/nb201.rst",
            category="Tables",
            labels={"table": "NAS-Bench-201"},
        ),
        tex="<results>/tables/nb201.tex",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/nb201.log",
    benchmark:
        "<results>/benchmarks/tables/nb201.tsv"
    params:
        stem=table_stem,
        data=json.dumps(config["data"]),
    resources:
        **cluster_resources("nb201_table"),
    shell:
        "ddpnas report nb201-table --runs {input} --out {params.stem}"
        " --data {params.data:q} > {log} 2>&1"


rule searches_table:
    input:
        lambda w: search_records(w.space),
    output:
        csv="<results>/tables/searches_{space}.csv",
        md="<results>/tables/searches_{space}.md",
        html=report(
            "<results>/tables/searches_{space}.html",
            caption="../report/searches.rst",
            category="Tables",
            labels={"table": "searched architectures ({space})"},
        ),
        tex="<results>/tables/searches_{space}.tex",
    wildcard_constraints:
        space=spaces_regex(),
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/searches_{space}.log",
    benchmark:
        "<results>/benchmarks/tables/searches_{space}.tsv"
    params:
        stem=table_stem,
        title=lambda w: f"Searched architectures, {w.space} space",
    resources:
        **cluster_resources("searches_table"),
    shell:
        "ddpnas report searches-table --runs {input} --title {params.title:q}"
        " --out {params.stem} > {log} 2>&1"


rule cifar10_table:
    input:
        **cifar10_inputs(),
    output:
        csv="<results>/tables/cifar10.csv",
        md="<results>/tables/cifar10.md",
        html=report(
            "<results>/tables/cifar10.html",
            caption="../report/cifar10.rst",
            category="Tables",
            labels={"table": "CIFAR-10"},
        ),
        tex="<results>/tables/cifar10.tex",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/cifar10.log",
    benchmark:
        "<results>/benchmarks/tables/cifar10.tsv"
    params:
        stem=table_stem,
    resources:
        **cluster_resources("cifar10_table"),
    shell:
        "ddpnas report cifar10-table --searches {input.searches} --retrains {input.retrains}"
        " --out {params.stem} > {log} 2>&1"


rule theta_figure:
    input:
        lambda w: f"<results>/search/{w.exp}/seed{figure_seed(w)}.json",
    output:
        report(
            "<results>/figures/theta_{exp}.png",
            caption="../report/theta.rst",
            category="Figures",
            labels={"figure": "theta", "experiment": "{exp}"},
        ),
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/figures/theta_{exp}.log",
    benchmark:
        "<results>/benchmarks/figures/theta_{exp}.tsv"
    resources:
        **cluster_resources("theta_figure"),
    shell:
        "ddpnas report theta-plot --run {input} --out {output} > {log} 2>&1"


# Last: where the run's time went, from every job's benchmark file (so it waits for all of them).
# It has no benchmark: of its own: a rerun would then count the previous run's timing job.
TIMING_OUTPUTS = [f"<results>/tables/timing.{ext}" for ext in ("csv", "md", "tex", "html")]


rule timing_table:
    input:
        lambda w: pipeline_outputs(),
    output:
        csv="<results>/tables/timing.csv",
        md="<results>/tables/timing.md",
        html=report(
            "<results>/tables/timing.html",
            caption="../report/timing.rst",
            category="Tables",
            labels={"table": "timing"},
        ),
        tex="<results>/tables/timing.tex",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/timing.log",
    params:
        stem=table_stem,
        benchmarks=f"{RESULTS}/benchmarks",
        cores=run_cores(),
    resources:
        **cluster_resources("timing_table"),
    shell:
        "ddpnas report timing --benchmarks {params.benchmarks} --cores {params.cores}"
        " --out {params.stem} > {log} 2>&1"
