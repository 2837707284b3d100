"""Adapters for the frameworks users already build with, each behind an extra:
``langchain`` (:class:`~tiervec.integrations.langchain.TiervecVectorStore`,
``pip install 'tiervec[langchain]'``)."""
