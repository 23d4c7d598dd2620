"""Adopting other tools' histories (`vestige adopt`) and speaking MLflow (`vestige
export-mlflow`): MLflow stores, W&B run folders and Hydra job folders become sealed
vestige runs marked `adopted`; vestige runs go out to an MLflow tracking server. Import
Repo and below (store, index, capture); not the history verbs, the run path or remotes.
MLflow, wandb and OmegaConf are imported inside the functions that need them."""
