# DDPNAS replication pipeline. Default config runs on a 2-core CPU:  snakemake --cores 2
# Paper scale on GPUs:  snakemake --cores 8 --resources gpu=1 --configfile config/paper.yaml
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ranking.smk"
include: "workflow/rules/costs.smk"


rule all:
    input:
        search_records(),
        nb201_tables(),
        cifar10_tables(),
        theta_figures(),
        ranking_outputs(),
        cost_tables(),
    default_target: True
