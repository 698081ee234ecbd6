"""What kubesalt hands a node: the conjurer zipapp and the node-agent bundle."""
