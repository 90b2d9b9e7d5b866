"""STT, TTS, LLM, VAD and turn-detection providers: interfaces, registry, built-ins.

The session engine builds providers with registry.build(stage, name, options,
voice=..., workers=...) and codes against the interfaces in base.py.
"""
