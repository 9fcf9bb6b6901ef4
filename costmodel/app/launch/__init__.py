"""Launch files from a plan: the verified deployment (deployment.py) in each engine's own flags (sglang.py,
vllm.py, trtllm.py) and in Dynamo's and llm-d's manifests (manifests.py), every flag checked against the
engine's recorded argument definitions (flags.py); and back again (importer.py)."""
