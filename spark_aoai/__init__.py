"""spark_aoai: Azure OpenAI chat completions and embeddings over Spark DataFrames.

>>> from spark_aoai import ChatCompletion, Embedding
>>> chat = ChatCompletion(deploymentName="gpt-4o", promptCol="prompt")  # doctest: +SKIP
>>> chat.transform(df)  # adds "response" and "error"  # doctest: +SKIP
"""

from spark_aoai.exceptions import ConfigurationError, RequestFailedError, SparkAOAIError
from spark_aoai.functions import chat_udf, embedding_udf
from spark_aoai.transformers import ChatCompletion, Embedding

__version__ = "0.1.0"

__all__ = [
    "ChatCompletion",
    "ConfigurationError",
    "Embedding",
    "RequestFailedError",
    "SparkAOAIError",
    "__version__",
    "chat_udf",
    "embedding_udf",
]
