"""Classification stage: language, category, sentiment, urgency, personal data, priority, SLA.

Nothing is loaded at import time: `pipeline.Classifier` loads its model and taxonomy when it
is constructed (in the service's lifespan).
"""
