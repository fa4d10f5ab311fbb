# Stage 1: one search per (experiment, seed). Killed jobs resume from their checkpoint.


rule search:
    output:
        "results/search/{exp}/seed{seed}.json",
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
    threads: search_threads
    resources:
        gpu_slots=uses_gpu,  # 1/gpu_share of a GPU; see gpu_share in the schema
    shell:
        "ddpnas search --experiment {wildcards.exp} --spec {params.spec:q} --data {params.data:q}"
        " --seed {wildcards.seed} --out {output} --checkpoint {params.checkpoint}"
        " --device {params.device} --threads {threads} > {log} 2>&1"
