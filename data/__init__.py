"""kb's demo data, installed as the package ``kb.demo_data``: ``docs/`` (the demo documents),
``business/`` (the business database's schema, deterministic seed and SQL examples), and
``eval-questions.yaml`` (an example ``kb eval`` file)."""
