# Stage 7: constraint-aware generation. One job per `generate:` entry: networks generated from the
# theta of one search record for a sweep of budgets (any space implementing choice_costs: nb201
# now, the mobile space once it is configured), as a table and a figure.
include: "generate_common.smk"


rule generation:
    input:
        generation_record,
    output:
        csv="results/tables/generation_{name}.csv",
        md=report(
            "results/tables/generation_{name}.md",
            category="Tables",
            labels={"table": "generation {name}"},
        ),
        tex="results/tables/generation_{name}.tex",
        figure=report(
            "results/figures/generation_{name}.png",
            category="Figures",
            labels={"figure": "generation", "experiment": "{name}"},
        ),
    conda:
        "../envs/ddpnas.yaml"
    log:
        "results/logs/generation/{name}.log",
    benchmark:
        "results/benchmarks/generation/{name}.tsv"
    wildcard_constraints:
        name=r"[^/.]+",
    params:
        args=generation_args,
        data=json.dumps(config["data"]),
        stem="results/tables/generation_{name}",
    shell:
        "ddpnas generate --record {input} {params.args} --data {params.data:q}"
        " --table {params.stem} --figure {output.figure} > {log} 2>&1"
