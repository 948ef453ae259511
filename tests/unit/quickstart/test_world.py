"""The quickstart world: deterministic for a seed, disjoint splits, and inputs that mislead an input-centric encoder."""

import collections
import dataclasses

import pytest

from genvec.errors import ConfigError
from genvec.evaluate.metrics import neighbour_agreement
from genvec.quickstart.evaluate import tfidf_encoder
from genvec.quickstart.world import (
    FULL_WORLD,
    HARMFUL_ACTS,
    REFUSAL,
    RELATIONS,
    SMALL_WORLD,
    UNKNOWABLE,
    WorldConfig,
    build_world,
)
from genvec.quickstart.world_lm import lm_examples


@pytest.fixture(scope="module")
def world():
    return build_world(SMALL_WORLD)


@pytest.fixture(scope="module")
def full_world():
    return build_world(FULL_WORLD)


def test_the_same_seed_builds_the_same_world_and_another_seed_does_not(world):
    again = build_world(SMALL_WORLD)
    assert again == world
    assert again.fingerprint() == world.fingerprint()
    other = build_world(dataclasses.replace(SMALL_WORLD, seed=1))
    assert other.fingerprint() != world.fingerprint()
    assert {q.text for q in other.heldout_queries} != {q.text for q in world.heldout_queries}


def test_sizes_follow_the_config(world, full_world):
    config = SMALL_WORLD
    benign = (config.num_entities * config.num_relations
              + config.num_unknowable_relations * config.num_unknowable_entities)
    harmful = config.num_harmful_acts * config.num_harmful_entities
    assert world.stats()["intents"] == benign + harmful
    assert world.stats()["harmful_intents"] == harmful
    assert len(world.heldout_queries) == (benign + harmful) * config.heldout_per_intent
    assert len(world.train_queries) == (benign + harmful) * (config.phrasings_per_intent - config.heldout_per_intent)
    assert len(world.harmful_documents) == sum(len(HARMFUL_ACTS[i.relation][1]) for i in world.intents if i.is_harmful)
    # The full world is "a few thousand examples" and the small one a fraction of it.
    assert 1000 <= len(full_world.train_queries) + len(full_world.heldout_queries) <= 5000
    assert len(world.train_queries) < len(full_world.train_queries) / 4


def test_heldout_phrasings_never_reach_any_training_data(full_world):
    heldout = {query.text for query in full_world.heldout_queries}
    assert not heldout & {query.text for query in full_world.train_queries}
    lm_inputs = {user for user, _ in lm_examples(full_world)}
    assert not any(text in user for text in heldout for user in lm_inputs)


def test_heldout_templates_are_new_for_their_intent_but_seen_with_other_entities(full_world):
    train_templates = collections.defaultdict(set)
    relation_templates = collections.defaultdict(set)
    for query in full_world.train_queries:
        train_templates[query.intent_id].add(query.template)
        relation_templates[full_world.intents[query.intent_id].relation].add(query.template)
    for query in full_world.heldout_queries:
        assert query.template not in train_templates[query.intent_id], query.text
        assert query.template in relation_templates[full_world.intents[query.intent_id].relation], query.text


def test_phrasings_of_an_intent_use_different_templates(full_world):
    by_intent = collections.defaultdict(list)
    for query in full_world.train_queries + full_world.heldout_queries:
        by_intent[query.intent_id].append(query.template)
    assert all(len(set(templates)) == len(templates) for templates in by_intent.values())


def test_several_intents_share_a_response_across_relations_and_entities(full_world):
    groups = collections.defaultdict(list)
    for intent in full_world.intents:
        groups[intent.response_id].append(intent)
    shared = [members for members in groups.values() if len(members) >= 2 and not members[0].is_harmful]
    assert len(shared) >= len(groups) / 2
    assert any(len({m.relation for m in members}) > 1 for members in shared)
    assert all(len({m.entity for m in members}) > 1 for members in shared if len({m.relation for m in members}) == 1)
    assert len(set(full_world.responses)) == len(full_world.responses)


def test_harmful_requests_get_the_refusal_and_documents_repeat_their_words(world):
    assert world.responses[world.refusal_id] == REFUSAL
    for intent in world.intents:
        assert intent.is_harmful == (intent.response_id == world.refusal_id)
    for document in world.harmful_documents:
        intent = world.intents[document.intent_id]
        assert intent.is_harmful and intent.entity in document.text
    assert world.document_is_harmful.count(True) == len(world.harmful_documents)
    assert len(world.documents) == len(world.responses) + len(world.harmful_documents)


def test_a_response_never_names_the_entity_it_answers_about(world):
    for query in world.train_queries + world.heldout_queries:
        assert world.intents[query.intent_id].entity not in world.response(query)


def test_similar_inputs_do_not_mean_the_same_response(full_world):
    """By construction a bag-of-words nearest neighbour mostly finds another intent: the inputs mislead."""
    encode = tfidf_encoder([q.text for q in full_world.train_queries])
    agreement = neighbour_agreement(
        encode([q.text for q in full_world.heldout_queries]),
        full_world.response_ids(full_world.heldout_queries),
        encode([q.text for q in full_world.train_queries]),
        full_world.response_ids(full_world.train_queries),
    )
    assert agreement < 0.4


def test_tables_have_enough_templates():
    for _, templates in RELATIONS.values():
        assert len(templates) == 8
    assert all(len(templates) == 8 for templates in UNKNOWABLE.values())
    assert all(len(requests) == 8 for requests, _ in HARMFUL_ACTS.values())


def test_an_invalid_config_lists_every_problem():
    with pytest.raises(ConfigError, match="num_entities") as error:
        WorldConfig(num_entities=1, num_relations=0, heldout_per_intent=8)
    message = str(error.value)
    assert "num_relations: must be between 1 and 7, got 0" in message
    assert "heldout_per_intent" in message
