# Memory check (configs that declare gpu_memory_gib, e.g. config/paper.yaml): before any GPU job,
# `ddpnas report estimate --check-memory` estimates every job's peak memory per GPU and refuses, in
# one line (on the terminal: only stdout goes to the log), a config with a job that cannot fit.
# Every GPU rule takes its output as an ancient() input: a rerun of this check (the config
# changed) never makes finished GPU jobs look outdated.


rule memory_check:
    output:
        "<results>/estimate.md",
    conda:
        "../envs/ddpnas.yaml"
    log:
        "<results>/logs/memory_check.log",
    benchmark:
        "<results>/benchmarks/memory_check.tsv"
    params:
        configfile=str(CONFIG_FILE),
        limit=config.get("gpu_memory_gib"),
        # the whole config: the check reruns when any of it changes
        config=json.dumps(config, sort_keys=True),
    threads: 1
    resources:
        **cluster_resources("memory_check"),
    shell:
        "ddpnas report estimate --config {params.configfile} --gpu-memory-gib {params.limit}"
        " --check-memory --out {output} > {log}"
