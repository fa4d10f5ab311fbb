# Stage 7: constraint-aware generation. One job per `generate:` entry: networks generated from the
# theta of one search record for a sweep of budgets (any space implementing choice_costs: nb201,
# and the mobile space of the ImageNet search), as a table and a figure; and one job per network
# of an entry's `retrain:` list (arch.json, retrained by the ImageNet stage's imagenet_retrain).
include: "generate_common.smk"


rule generation:
    input:
        generation_record,
    output:
        csv="<results>/tables/generation_{name}.csv",
        md="<results>/tables/generation_{name}.md",
        html=report(
            "<results>/tables/generation_{name}.html",
            caption="../report/generation.rst",
            category="Tables",
            labels={"table": "generation {name}"},
        ),
        tex="<results>/tables/generation_{name}.tex",
        figure=report(
            "<results>/figures/generation_{name}.png",
            caption="../report/generation_figure.rst",
            category="Figures",
            labels={"figure": "generation", "experiment": "{name}"},
        ),
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/generation/{name}.log",
    benchmark:
        "<results>/benchmarks/generation/{name}.tsv"
    wildcard_constraints:
        name=r"[^/.]+",
    params:
        args=generation_args,
        data=json.dumps(config["data"]),
        stem=lambda w: f"{RESULTS}/tables/generation_{w.name}",
    resources:
        **cluster_resources("generation"),
    shell:
        "ddpnas generate --record {input} {params.args} --data {params.data:q}"
        " --table {params.stem} --figure {output.figure} > {log} 2>&1"


rule generate_network:
    input:
        generated_net_record,
    output:
        "<results>/generated/{name}/seed{seed}/net{i}.json",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/generated/{name}/seed{seed}/net{i}.log",
    benchmark:
        "<results>/benchmarks/generated/{name}/seed{seed}/net{i}.tsv"
    wildcard_constraints:
        name=r"[^/.]+",
        seed=r"\d+",
        i=r"\d+",
    params:
        args=generated_net_args,
        data=json.dumps(config["data"]),
    resources:
        **cluster_resources("generate_network"),
    shell:
        "ddpnas generate --record {input} {params.args} --data {params.data:q}"
        " --out {output} > {log} 2>&1"
