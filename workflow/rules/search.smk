# Stage 1: one search per (experiment, seed). Killed jobs resume from their checkpoint.


rule search:
    output:
        record="results/search/{exp}/seed{seed}.json",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "results/logs/search/{exp}/seed{seed}.log",
    benchmark:
        "results/benchmarks/search/{exp}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    params:
        spec=lambda w: json.dumps(config["searches"][w.exp]),
        data=json.dumps(config["data"]),
        checkpoint="results/checkpoints/{exp}/seed{seed}.pt",
        device=config["device"],
        supernet="",
    threads: search_threads
    resources:
        gpu=uses_gpu,
    shell:
        "ddpnas search --experiment {wildcards.exp} --spec {params.spec:q} --data {params.data:q}"
        " --seed {wildcards.seed} --out {output.record} --checkpoint {params.checkpoint}"
        " --device {params.device} --threads {threads}{params.supernet} > {log} 2>&1"
