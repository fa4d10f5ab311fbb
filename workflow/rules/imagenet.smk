# ImageNet stage: (stand-in) -> mobile-space search -> retrain the searched network (net "mobile")
# and the networks generated from its theta for budgets (net "<entry>-net<i>", generate.smk);
# DARTS-space cells transferred to ImageNet; results/tables/imagenet.*. Rules only call
# `ddpnas imagenet` (a generated arch.json is retrained like the searched record, --arch FILE);
# a checkpoint of another arch, cell or protocol (a job rerun as its input changed) is removed.
include: "imagenet_common.smk"


rule imagenet_standin:
    input:
        cifar_zip(),
    output:
        directory(STANDIN_DIR),
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/imagenet/standin.log",
    benchmark:
        "<results>/benchmarks/imagenet/standin.tsv"
    params:
        train=IMAGENET.get("standin", {}).get("train_per_class", 30),
        val=IMAGENET.get("standin", {}).get("val_per_class", 10),
        size=IMAGENET.get("standin", {}).get("size", 64),
    resources:
        **cluster_resources("imagenet_standin"),
    shell:
        "ddpnas imagenet standin --cifar-zip {input} --out {output} --train-per-class {params.train}"
        " --val-per-class {params.val} --size {params.size} > {log} 2>&1"


rule imagenet_search:
    input:
        imagenet_root_input(),
        memory_checked(),
    output:
        "<results>/imagenet/search/seed{seed}.json",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/imagenet/search/seed{seed}.log",
    benchmark:
        "<results>/benchmarks/imagenet/search/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    params:
        block=json.dumps(IMAGENET),
        root=imagenet_root_arg(),
        checkpoint=lambda w: f"{RESULTS}/checkpoints/imagenet/search/seed{w.seed}.pt",
        device=config["device"],
    threads: config["threads"]
    resources:
        **cluster_resources("imagenet_search", whole_gpus()),
        gpu=whole_gpus(),
    shell:
        "ddpnas imagenet search --block {params.block:q} {params.root} --seed {wildcards.seed}"
        " --out {output} --checkpoint {params.checkpoint} --device {params.device}"
        " --threads {threads} --stale-checkpoint restart > {log} 2>&1"


rule imagenet_retrain:
    input:
        root=imagenet_root_input(),
        arch=imagenet_arch,
        memory=memory_checked(),
    output:
        result="<results>/imagenet/retrain/{net}/seed{seed}/result.json",
        metrics="<results>/imagenet/retrain/{net}/seed{seed}/metrics.csv",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/imagenet/retrain/{net}/seed{seed}.log",
    benchmark:
        "<results>/benchmarks/imagenet/retrain/{net}/seed{seed}.tsv"
    wildcard_constraints:
        net=r"mobile|[^/]+-net\d+",
        seed=r"\d+",
    params:
        block=json.dumps(IMAGENET),
        root=imagenet_root_arg(),
        out_dir=lambda w: f"{RESULTS}/imagenet/retrain/{w.net}/seed{w.seed}",
        device=config["device"],
    threads: config["threads"]
    resources:
        **cluster_resources("imagenet_retrain", whole_gpus()),
        gpu=whole_gpus(),
    shell:
        "ddpnas imagenet retrain --block {params.block:q} {params.root} --arch {input.arch}"
        " --seed {wildcards.seed} --out-dir {params.out_dir} --device {params.device}"
        " --threads {threads} --stale-checkpoint restart > {log} 2>&1"


rule imagenet_transfer:
    input:
        root=imagenet_root_input(),
        genotype="<results>/genotypes/{exp}/seed{seed}.txt",
        memory=memory_checked(),
    output:
        result="<results>/imagenet/transfer/{exp}/seed{seed}/result.json",
        metrics="<results>/imagenet/transfer/{exp}/seed{seed}/metrics.csv",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/imagenet/transfer/{exp}/seed{seed}.log",
    benchmark:
        "<results>/benchmarks/imagenet/transfer/{exp}/seed{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    params:
        block=json.dumps(IMAGENET),
        root=imagenet_root_arg(),
        out_dir=lambda w: f"{RESULTS}/imagenet/transfer/{w.exp}/seed{w.seed}",
        device=config["device"],
    threads: config["threads"]
    resources:
        **cluster_resources("imagenet_transfer", whole_gpus()),
        gpu=whole_gpus(),
    shell:
        "ddpnas imagenet retrain --block {params.block:q} {params.root}"
        " --genotype {input.genotype} --seed {wildcards.seed} --out-dir {params.out_dir}"
        " --device {params.device} --threads {threads} --stale-checkpoint restart > {log} 2>&1"


rule imagenet_table:
    input:
        searches=lambda w: [s for s, _ in imagenet_pairs()],
        retrains=lambda w: [r for _, r in imagenet_pairs()],
    output:
        csv="<results>/tables/imagenet.csv",
        md="<results>/tables/imagenet.md",
        html=report(
            "<results>/tables/imagenet.html",
            caption="../report/imagenet.rst",
            category="Tables",
            labels={"table": "ImageNet"},
        ),
        tex="<results>/tables/imagenet.tex",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/tables/imagenet.log",
    benchmark:
        "<results>/benchmarks/tables/imagenet.tsv"
    params:
        stem=table_stem,
    resources:
        **cluster_resources("imagenet_table"),
    shell:
        "ddpnas imagenet table --searches {input.searches} --retrains {input.retrains}"
        " --out {params.stem} > {log} 2>&1"
