"""The five yidi services and the node that composes them."""
