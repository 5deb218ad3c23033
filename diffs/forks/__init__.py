"""Fork tokens: where a post-trained model parts from its base, and whether the base's entropy finds them."""
