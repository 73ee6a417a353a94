# The paper's Tables 1-5 and Figure 3, plus training curves; `snakemake --report` collects them.


rule tables:
    input:
        metrics=all_metrics_files(),
    output:
        md=[
            report(
                f"{RESULTS}/tables/table{n}.md",
                caption=f"../report/table{n}.rst",
                category="Tables",
                labels={"table": f"Table {n}"},
            )
            for n in range(1, 6)
        ],
        tsv=[f"{RESULTS}/tables/table{n}.tsv" for n in range(1, 6)],
    log:
        "logs/tables.log",
    benchmark:
        "benchmarks/tables.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        layout=json.dumps(tables_layout(), separators=(",", ":")),
        out_dir=lambda wc, output: os.path.dirname(output.md[0]),
    shell:
        "affectflow tables --layout {params.layout:q} --out-dir {params.out_dir} > {log} 2>&1"


rule figures:
    input:
        cnn_trace=f"{predictions_dir('cnn', FIGURE_CNN, FIGURE_RUN)}/{FIGURE_SUBJECT}.csv",
        rnn_trace=f"{predictions_dir('rnn', FIGURE_RNN, FIGURE_RUN)}/{FIGURE_SUBJECT}.csv",
        histories=all_histories(),
    output:
        figure3=report(
            f"{RESULTS}/figures/figure3.png",
            caption="../report/figure3.rst",
            category="Figures",
            labels={"figure": "Figure 3"},
        ),
        smoothness=f"{RESULTS}/figures/figure3_smoothness.json",
        curves=report(
            f"{RESULTS}/figures/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
            labels={"figure": "Training curves"},
        ),
    log:
        "logs/figures.log",
    benchmark:
        "benchmarks/figures.tsv"
    conda:
        "../../envs/affectflow.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        cnn_label=CNN_LABELS.get(FIGURE_CNN, FIGURE_CNN),
        rnn_label=f"CNN+RNN ({FIGURE_RNN})",
    shell:
        "affectflow figures --trace {params.cnn_label:q} {input.cnn_trace}"
        " --trace {params.rnn_label:q} {input.rnn_trace}"
        " --histories {input.histories}"
        " --figure3 {output.figure3} --smoothness {output.smoothness}"
        " --curves {output.curves} > {log} 2>&1"
