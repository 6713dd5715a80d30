"""What every chapter uses: configuring from params and papermill (chapter), generic tables and provenance,
figures with bands over trials (plots), slider views that work without a kernel (views), and the scorecard
engine (scorecard: Claim, measures, rules, verdicts)."""
