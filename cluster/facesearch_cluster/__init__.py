"""facesearch on a Ray cluster: sharded corpora, one writer per shard replica (docs/scale.md).

Modules: clusterfile (the cluster description and the bucket map: no Ray), merge (merging shard
answers: no Ray), runtime (the Ray actors and tasks), cli (the facesearch-cluster command).
"""
