"""Classification + localisation (one object per image) on the engine."""
