"""The pipeline checks: is a poor result the data's or the pipeline's?

- `sanity`: the overfit check and the shuffled-label check (rule sanity_training), and the label
  round trip (rule label_round_trip);
- `nnunet_export`, `nnunet_reference`: the same splits exported to nnU-Net v2 and its reference
  training and evaluation (rules nnunet_export, nnunet_train_predict, nnunet_evaluate);
- `pipeline`: what their results say together (the `pipeline` check of the final checklist and the
  report's pipeline section).

docs/pipeline-checks.md says what each check measures and how to read it.
"""
