"""Adopting other tools' histories (`vestige adopt`) and speaking MLflow (`vestige
export-mlflow`): MLflow stores, W&B run folders and Hydra job folders become sealed
vestige runs marked `adopted`; vestige runs go out to an MLflow tracking server."""
