"""``python -m hwnas`` (also what ``torchrun -m hwnas`` runs)."""

from hwnas.cli import main

if __name__ == "__main__":
    main()
