"""Text: item documents, TF-IDF, MiniLM sentence embeddings, word2vec over playlists and sessions."""

from deepcuts.models.text.documents import ItemTexts, Vocabulary, load_item_texts, tag_terms, words
from deepcuts.models.text.search import TEXT_VIEWS, Hit, TextSearch
from deepcuts.models.text.sentence import EmbeddingCache, SentenceEncoder, minilm_path
from deepcuts.models.text.tfidf import TfidfEncoder
from deepcuts.models.text.word2vec import Item2Vec, item_sentences

__all__ = [
    "TEXT_VIEWS", "EmbeddingCache", "Hit", "Item2Vec", "ItemTexts", "SentenceEncoder", "TextSearch",
    "TfidfEncoder", "Vocabulary", "item_sentences", "load_item_texts", "minilm_path", "tag_terms",
    "words",
]  # fmt: skip
