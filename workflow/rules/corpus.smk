# The embedded demo corpus (config corpus.synthetic): rendered from real face photographs.
# A real corpus (config corpus.path without corpus.synthetic) is read as it is.

if SYNTHETIC:

    rule synth_corpus:
        output:
            videos=[rec["video"] for rec in RECORDINGS.values()],
            labels=[
                path for rec in RECORDINGS.values() for path in rec["labels"].values()
            ],
        log:
            "logs/synth_corpus.log",
        benchmark:
            "benchmarks/synth_corpus.tsv"
        conda:
            "../../envs/affectflow.yaml"
        threads: 2
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            out=lambda wc: CORPUS,
            seed=SYNTHETIC["seed"],
            subjects=",".join(str(n) for n in SYNTHETIC["subjects"]),
            seconds=SYNTHETIC["seconds"],
            fps=SYNTHETIC["fps"],
            size=SYNTHETIC["size"],
        # Snakemake pre-creates the outputs' (empty) folders; synth only replaces a
        # folder that is empty or a synthetic corpus, so those go first.
        shell:
            "find {params.out} -depth -type d -empty -delete 2>/dev/null || true; "
            "affectflow corpus synth --out {params.out} --seed {params.seed}"
            " --subjects {params.subjects} --seconds {params.seconds}"
            " --fps {params.fps} --size {params.size} --workers {threads} > {log} 2>&1"
