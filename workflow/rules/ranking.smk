# Validating the weight-sharing signal: every weight-sharing search also writes its final supernet
# (results/supernets/<experiment>/seed<N>.pt, via `ddpnas search --supernet-out`; search.smk), and
# the configured NAS-Bench-201 supernets rank a stratified sample of cells against the table.


rule nb201_ranking:
    input:
        runs=ranking_runs("search"),
        supernets=ranking_runs("supernets"),
        memory=memory_checked(),
    output:
        csv="<results>/tables/nb201_ranking.csv",
        md="<results>/tables/nb201_ranking.md",
        html=report(
            "<results>/tables/nb201_ranking.html",
            caption="../report/nb201_ranking.rst",
            category="Tables",
            labels={"table": "NAS-Bench-201 supernet ranking"},
        ),
        tex="<results>/tables/nb201_ranking.tex",
        edges_csv="<results>/tables/nb201_ranking_edges.csv",
        edges_md="<results>/tables/nb201_ranking_edges.md",
        edges_html=report(
            "<results>/tables/nb201_ranking_edges.html",
            caption="../report/nb201_ranking_edges.rst",
            category="Tables",
            labels={"table": "NAS-Bench-201 per-edge op ranking"},
        ),
        edges_tex="<results>/tables/nb201_ranking_edges.tex",
        figure=report(
            "<results>/figures/nb201_ranking.png",
            caption="../report/nb201_ranking_figure.rst",
            category="Figures",
            labels={"figure": "supernet vs NAS-Bench-201", "experiment": "all"},
        ),
        cells="<results>/ranking/cells.csv",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/nb201_ranking.log",
    benchmark:
        "<results>/benchmarks/tables/nb201_ranking.tsv"
    params:
        stem=table_stem,
        data=json.dumps(config["data"]),
        device=config["device"],
        **{k: v for k, v in config["report"]["ranking"].items() if k != "experiments"},
    threads: config["threads"]
    resources:
        **cluster_resources("nb201_ranking", whole_gpus()),
        gpu=whole_gpus(),
    shell:
        "ddpnas report ranking --runs {input.runs} --supernets {input.supernets}"
        " --data {params.data:q} --cells {params.cells} --sample-seed {params.sample_seed}"
        " --bootstrap {params.bootstrap} --top-k {params.top_k}"
        " --out {params.stem} --figure {output.figure} --cells-out {output.cells}"
        " --device {params.device} --threads {threads} > {log} 2>&1"
