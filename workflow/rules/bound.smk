# Theoretical bound: failure bounds of DDPNAS's pruning schedule beside a Monte-Carlo of the real
# strategy, and accuracy vs search cost on NAS-Bench-201 (tabular). No search record is needed.

BOUND_OUTPUTS = [
    f"<results>/tables/{stem}.{ext}" for stem in ("bound", "bound_cost") for ext in ("csv", "md", "tex", "html")
] + [f"<results>/figures/bound_{name}.png" for name in ("T", "cost")]


rule bound:
    output:
        csv="<results>/tables/bound.csv",
        md="<results>/tables/bound.md",
        html=report(
            "<results>/tables/bound.html",
            caption="../report/bound_table.rst",
            category="Bound",
            labels={"table": "bounds vs Monte-Carlo"},
        ),
        tex="<results>/tables/bound.tex",
        cost_csv="<results>/tables/bound_cost.csv",
        cost_md="<results>/tables/bound_cost.md",
        cost_html=report(
            "<results>/tables/bound_cost.html",
            caption="../report/bound_cost.rst",
            category="Bound",
            labels={"table": "accuracy vs search cost"},
        ),
        cost_tex="<results>/tables/bound_cost.tex",
        fig_t=report(
            "<results>/figures/bound_T.png",
            caption="../report/bound_T.rst",
            category="Bound",
            labels={"figure": "failure vs T"},
        ),
        fig_cost=report(
            "<results>/figures/bound_cost.png",
            caption="../report/bound_cost.rst",
            category="Bound",
            labels={"figure": "accuracy vs search cost"},
        ),
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/bound.log",
    benchmark:
        "<results>/benchmarks/tables/bound.tsv"
    params:
        bound=json.dumps(config["report"].get("bound", {})),
        data=json.dumps(config["data"]),
        stem=table_stem,
        figures=lambda w, output: os.path.dirname(output.fig_t),
    resources:
        **cluster_resources("bound"),
    shell:
        "ddpnas report bound --out {params.stem} --figures {params.figures}"
        " --bound {params.bound:q} --data {params.data:q} > {log} 2>&1"
