# Cost accounting: device-hours per method and stage from the records, checked against the
# benchmark file Snakemake writes for the same job, beside the published search costs.


rule costs_table:
    input:
        **cost_inputs(),
    output:
        csv="<results>/tables/costs.csv",
        md="<results>/tables/costs.md",
        html=report(
            "<results>/tables/costs.html",
            caption="../report/costs.rst",
            category="Tables",
            labels={"table": "costs"},
        ),
        tex="<results>/tables/costs.tex",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/costs.log",
    benchmark:
        "<results>/benchmarks/tables/costs.tsv"
    params:
        stem=table_stem,
    resources:
        **cluster_resources("costs_table"),
    shell:
        "ddpnas report costs --searches {input.searches}"
        " --search-benchmarks {input.search_benchmarks} --retrains {input.retrains}"
        " --retrain-searches {input.retrain_searches}"
        " --retrain-benchmarks {input.retrain_benchmarks} --out {params.stem} > {log} 2>&1"
