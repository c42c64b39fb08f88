"""From-scratch architectures. Every public module here is imported by the registry, so a new file
with ``@register_model`` functions registers itself; modules starting with ``_`` are helpers."""
