# Stage 1: searches. Weight-sharing experiments run one job per (experiment, seed) and resume a
# killed job from its checkpoint (one of another config, left by a job rerun because its spec
# changed, is removed: --stale-checkpoint restart); a tabular experiment runs all its seeds in one
# job (one process, milliseconds per seed), writing one record per seed only after every seed has
# finished.


rule search:
    input:
        memory_checked(),
    output:
        record="<results>/search/{exp}/seed{seed}.json",
        # the trained supernet, for the ranking check (ranking.smk)
        supernet="<results>/supernets/{exp}/seed{seed}.pt",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/search/{exp}/seed{seed}.log",
    benchmark:
        "<results>/benchmarks/search/{exp}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
        exp=per_seed_experiments_regex(),
    params:
        spec=lambda w: json.dumps(config["searches"][w.exp]),
        data=json.dumps(config["data"]),
        checkpoint=lambda w: f"{RESULTS}/checkpoints/{w.exp}/seed{w.seed}.pt",
        device=config["device"],
    threads: search_threads
    resources:
        **cluster_resources("search", whole_gpus()),
        gpu=search_gpus,
        gpu_slots=uses_gpu,  # 1/gpu_share of a GPU; see gpu_share in the schema
    shell:
        "ddpnas search --experiment {wildcards.exp} --spec {params.spec:q} --data {params.data:q}"
        " --seed {wildcards.seed} --out {output.record} --checkpoint {params.checkpoint}"
        " --device {params.device} --threads {threads} --stale-checkpoint restart"
        " --supernet-out {output.supernet} > {log} 2>&1"


# One rule per tabular experiment (its outputs are that experiment's seeds), named
# search_tabular_<experiment with - as _>.
for _exp in tabular_experiments():

    rule:
        name:
            f"search_tabular_{_exp.replace('-', '_')}"
        output:
            experiment_records(_exp),
        conda:
            "../envs/ddpnas.yaml"
        log:
            f"<results>/logs/search/{_exp}/seeds.log",
        benchmark:
            f"<results>/benchmarks/search/{_exp}/seeds.tsv"
        params:
            exp=_exp,
            spec=json.dumps(config["searches"][_exp]),
            data=json.dumps(config["data"]),
            seeds=",".join(str(s) for s in config["searches"][_exp]["seeds"]),
            # a function: "{seed}" is the CLI's pattern, not a wildcard
            out=lambda w, exp=_exp: f"{RESULTS}/search/{exp}/seed{{seed}}.json",
        threads: 1
        resources:
            **cluster_resources("search_tabular"),
        shell:
            "ddpnas search --experiment {params.exp} --spec {params.spec:q}"
            " --data {params.data:q} --seeds {params.seeds} --threads {threads}"
            " --out {params.out:q} > {log} 2>&1"
