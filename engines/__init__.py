"""kb's query-time engines, each a LlamaIndex engine: documents, SQL, the router and chat sessions."""
