"""The quality report's pure parts: token match, per-system aggregates (τ over bench prompts,
gains over exact at the same k, the similarity scale), the Markdown table and the plot file."""

from edgespec.bench.quality import SYSTEMS, load_answers
from edgespec.bench.quality_report import Scored, plot, summarize, to_markdown, token_match


def _scored(system, k, item, sim, correct=None, accepted=0, relaxed=0):
    stats = {"rounds": 4, "accepted_tokens": accepted, "drafted_tokens": 16, "relaxed_accepted": relaxed,
             "bytes_up": 400} if k else None
    return Scored(system, k, item, "chat", "text", [1, 2], stats, similarity=sim, token_match=sim,
                  nll=1.0, correct=correct)


def test_token_match_counts_positions_of_the_reference():
    assert token_match([1, 2, 3], [1, 2, 3]) == 1.0
    assert token_match([1, 9], [1, 2, 3, 4]) == 0.25


def test_summary_gains_and_markdown(tmp_path):
    rows = [_scored("target greedy", 0, "a", 1.0), _scored("target T=0.3", 0, "a", 0.8),
            _scored("draft greedy", 0, "a", 0.6), _scored("exact", 4, "a", 1.0, accepted=4),
            _scored("fly", 4, "a", 0.9, accepted=8, relaxed=4),
            Scored("fly", 4, "q", "answer:capital", "Paris", [3], None, None, None, None, True)]
    summary = summarize(rows)
    fly = summary["rows"]["fly @ k=4"]
    assert fly["tau"] == 3.0 and summary["rows"]["exact @ k=4"]["tau"] == 2.0
    assert abs(fly["tau_gain"] - 0.5) < 1e-9 and fly["relaxed_share"] == 0.5 and fly["accuracy"] == 1.0
    assert summary["similarity_scale"] == {"target_t03": 0.8, "draft_only": 0.6}
    md = to_markdown({"model": "m", "prompts": 1, "max_new_tokens": 8, "answers": 1, "date": "d",
                      "target": "t", "draft": "d"}, summary)
    assert "| fly | 4 | 3.00 | +50.0% |" in md
    plot(summary, tmp_path / "q.png")
    assert (tmp_path / "q.png").stat().st_size > 1000


def test_bundled_answer_set_and_systems():
    answers = load_answers()
    assert len(answers) >= 40 and len({a.id for a in answers}) == len(answers)
    assert {a.kind for a in answers} == {"answer:capital", "answer:arithmetic", "answer:copy", "answer:extraction"}
    assert {rule for rule, _ in SYSTEMS.values()} == {"exact", "fly", "dropmatch", "semantic"}
