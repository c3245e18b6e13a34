"""The demo's training run (`manage.py seed_demo`): see `scoring.demo.run`."""
