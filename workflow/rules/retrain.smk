# Stages 2-3 (DARTS space): search record -> genotype -> retrain from scratch -> test accuracy.


rule genotype:
    input:
        "<results>/search/{exp}/seed{seed}.json",
    output:
        "<results>/genotypes/{exp}/seed{seed}.txt",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/genotypes/{exp}/seed{seed}.log",
    benchmark:
        "<results>/benchmarks/genotypes/{exp}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    resources:
        **cluster_resources("genotype"),
    shell:
        "ddpnas genotype --record {input} --out {output} > {log} 2>&1"


rule retrain:
    input:
        genotype="<results>/genotypes/{exp}/seed{seed}.txt",
        memory=memory_checked(),
    output:
        result="<results>/retrain/{exp}/seed{seed}/result.json",
        metrics="<results>/retrain/{exp}/seed{seed}/metrics.csv",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/retrain/{exp}/seed{seed}.log",
    benchmark:
        "<results>/benchmarks/retrain/{exp}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    params:
        retrain=json.dumps(config["retrain"]),
        data=json.dumps(config["data"]),
        device=config["device"],
        launcher=retrain_launcher(),
        out_dir=lambda w: f"{RESULTS}/retrain/{w.exp}/seed{w.seed}",
    threads: config["threads"]
    resources:
        **cluster_resources("retrain", whole_gpus(config["retrain"]["gpus"])),
        **retrain_resources(),
        gpu_slots=retrain_gpu_slots(),
    shell:
        "{params.launcher} retrain --genotype {input.genotype} --retrain {params.retrain:q}"
        " --data {params.data:q} --seed {wildcards.seed} --out-dir {params.out_dir}"
        " --device {params.device} --threads {threads} --stale-checkpoint restart > {log} 2>&1"
