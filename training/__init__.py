"""CALM Studio's training app (Django): records SFT, GRPO and evaluation runs, launches them on
the ``gpu`` queue as subprocesses running ``training.scripts``, and shows their progress, charts
and evaluation tables. See README.md here."""
