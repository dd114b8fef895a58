"""MariaDBChatStore: order, roles, extra fields, isolation between sessions, concurrency, async."""

from __future__ import annotations

import threading

from llama_index.core.llms import ChatMessage, MessageRole

from kb.stores.chat_store import MariaDBChatStore


def test_round_trip_in_order_with_roles_and_extra_fields(db_url):
    store = MariaDBChatStore.from_params(db_url, table_name="chat")
    messages = [
        ChatMessage(role=MessageRole.SYSTEM, content="be brief"),
        ChatMessage(role=MessageRole.USER, content="héllo 'quoted' \"twice\" \\ %_"),
        ChatMessage(role=MessageRole.ASSISTANT, content="hi", additional_kwargs={"sources": ["a.md"], "n": 3}),
    ]
    for message in messages:
        store.add_message("s1", message)
    got = store.get_messages("s1")
    assert [m.role for m in got] == [MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT]
    assert got[1].content == messages[1].content
    assert got[2].additional_kwargs == {"sources": ["a.md"], "n": 3}
    store.add_message("s1", ChatMessage(role=MessageRole.USER, content="inserted"), idx=1)
    assert [m.content for m in store.get_messages("s1")][:2] == ["be brief", "inserted"]
    assert store.delete_message("s1", 1).content == "inserted"
    assert store.delete_last_message("s1").content == "hi"
    store.set_messages("s1", [ChatMessage(role=MessageRole.USER, content="only")])
    assert [m.content for m in store.get_messages("s1")] == ["only"]
    assert store.get_keys() == ["s1"]
    assert store.delete_messages("s1")[0].content == "only"
    assert store.get_messages("s1") == [] and store.delete_messages("s1") is None


def test_sessions_never_see_each_other_even_with_8_threads(db_url):
    store = MariaDBChatStore.from_params(db_url, table_name="chat", pool_size=8)
    errors = []

    def chatter(n: int) -> None:
        try:
            for i in range(40):
                store.add_message(f"session-{n}", ChatMessage(role=MessageRole.USER, content=f"{n}:{i}"))
                if i % 10 == 0:
                    seen = store.get_messages(f"session-{n}")
                    assert [m.content for m in seen] == [f"{n}:{j}" for j in range(i + 1)]
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for n in range(8):
        assert [m.content for m in store.get_messages(f"session-{n}")] == [f"{n}:{i}" for i in range(40)]
    assert sorted(store.get_keys()) == sorted(f"session-{n}" for n in range(8))


async def test_async_twins(db_url):
    store = MariaDBChatStore.from_params(db_url, table_name="chat")
    await store.async_add_message("a", ChatMessage(role=MessageRole.USER, content="one"))
    await store.aset_messages("b", [ChatMessage(role=MessageRole.USER, content="two")])
    assert [m.content for m in await store.aget_messages("a")] == ["one"]
    assert set(await store.aget_keys()) == {"a", "b"}
    assert (await store.adelete_last_message("b")).content == "two"
    await store.adelete_messages("a")
    assert await store.aget_keys() == []


def test_the_chat_memory_keeps_what_llamaindex_keeps_in_linear_time():
    """RecentChatMemory.get returns what ChatMemoryBuffer.get returns (the newest messages within the
    token limit, not starting with an assistant message), without its quadratic re-counting."""
    import random
    import time

    from llama_index.core.llms import ChatMessage, MessageRole
    from llama_index.core.memory import ChatMemoryBuffer

    from kb.engines.chat import RecentChatMemory

    rng = random.Random(7)
    for _ in range(200):
        history = [
            ChatMessage(
                role=rng.choice([MessageRole.USER, MessageRole.ASSISTANT]),
                content=" ".join("w" for _ in range(rng.randint(1, 30))),
            )
            for _ in range(rng.randint(1, 25))
        ]
        limit = rng.randint(1, 200)
        ours = RecentChatMemory.from_defaults(chat_history=history, token_limit=limit, tokenizer_fn=str.split)
        theirs = ChatMemoryBuffer.from_defaults(chat_history=history, token_limit=limit, tokenizer_fn=str.split)
        assert ours.get() == theirs.get(), (limit, [(m.role.value, len(m.content.split())) for m in history])

    long = [ChatMessage(role=MessageRole.USER, content=" ".join(["word"] * 40)) for _ in range(2000)]
    memory = RecentChatMemory.from_defaults(chat_history=long, token_limit=1024, tokenizer_fn=str.split)
    started = time.perf_counter()
    kept = memory.get()
    assert time.perf_counter() - started < 0.5 and len(kept) == 1024 // 40
