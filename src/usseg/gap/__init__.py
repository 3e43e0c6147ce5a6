"""The gap study: what would close the simulator-to-real gap, measured (docs/remedies.md).

- `files`: where the study's arms keep their files (the one owner of that layout);
- `arms`: one arm's job, its seeds trained and evaluated in one process (rule gap_arm, gap_loso_arm);
- `study`: the folds, the learning-curve split, the domain check and the study's tables
  (rules gap_loso_folds, gap_curve_split, gap_domain, gap_summary).

The statistics are usseg.remedies.gap_stats; the page's account of the study is usseg.report.gap_study.
"""
