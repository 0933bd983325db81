"""The Wisconsin breast-cancer dataset bundled with scikit-learn."""
