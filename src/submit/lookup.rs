//! Looking an item up after a request that may have been processed: the
//! operation's own lookup, and where that proves nothing by itself, the
//! absence controls (see [`absence`]) asked once a run and again before
//! each use.

use std::sync::atomic::Ordering;

use super::absence;
use super::ctx::{Ctx, lock, seed_of};
use super::http;
use super::ledger::Record;
use super::op::{Lookup, Operation};
use super::stop::Stop;
use crate::dcms::Answer;

pub(super) async fn look_up<O: Operation>(
    op: &O,
    ctx: &Ctx,
    item: &O::Item,
    request_id: &mut Option<String>,
) -> Lookup {
    let Some((path, body)) = op.lookup(item) else {
        return Lookup::Failed(
            "the API has no way to tell whether the earlier request took effect".into(),
        );
    };
    let seed = seed_of(&O::key(item));
    let answer = match http::read(ctx, path, &body, seed, &mut |rid| *request_id = rid).await {
        Ok(a) => a,
        Err(why) => return Lookup::Failed(why),
    };
    match op.looked_up(item, &answer) {
        Lookup::Failed(why) => calibrated_absence(op, ctx, &answer, &why)
            .await
            .unwrap_or(Lookup::Failed(why)),
        found => found,
    }
}

/// Records what the absence controls answered, and what it proved.
pub(super) async fn record_controls<O: Operation>(
    ctx: &Ctx,
    controls: &absence::Controls,
    said: String,
) {
    tracing::info!(
        event = "absence",
        "lookup controls: {}; {said}",
        controls.describe()
    );
    let record = Record::Controls {
        kind: O::KIND,
        answers: controls.describe(),
        verdict: said,
        run: ctx.books.run,
        at: crate::clock::now(),
    };
    if let Err(e) = ctx.books.writer.record(vec![record]).await {
        ctx.stopper.stop(Stop::Ledger(e.to_string()));
    }
}

/// Asks the lookup for a made-up key and for `known`, each called until it
/// gets an answer to read (see [`http::read`]); then it counts as failed.
pub(super) async fn ask_controls<O: Operation>(
    op: &O,
    ctx: &Ctx,
    known: Option<String>,
) -> absence::Controls {
    let ask = |key: String| async move {
        let (path, body) = op.lookup_key(&key).ok_or_else(|| "no lookup".to_string())?;
        http::read(ctx, path, &body, seed_of(&key), &mut |_| {}).await
    };
    let made_up = absence::made_up_id();
    let made_up_shape = ask(made_up.clone()).await.map(|a| absence::Shape::of(&a));
    let known = match known {
        None => None,
        Some(key) => {
            let answer = ask(key.clone())
                .await
                .map(|a| (absence::Shape::of(&a), op.shows_held(&a)));
            Some((key, answer))
        }
    };
    absence::Controls {
        made_up,
        made_up_shape,
        known,
    }
}

/// A lookup that proved nothing by itself, read against the absence
/// controls (see [`absence`]), asked the first time in a run: `Some(Missing)`
/// when its answer has the shape that means "not held" and the controls,
/// asked again, still say so; the calibration is void for the rest of the
/// run when they do not. `None`: the answer still proves nothing.
pub(super) async fn calibrated_absence<O: Operation>(
    op: &O,
    ctx: &Ctx,
    answer: &Answer,
    why: &str,
) -> Option<Lookup> {
    op.lookup_key("")?;
    // Asked again (a few times a run) while the controls get no answer.
    let verdict = ctx
        .absence
        .get_or_try_init(|| async {
            if ctx.absence_tries.fetch_add(1, Ordering::Relaxed) >= 3 {
                return Err(());
            }
            let controls = ask_controls(op, ctx, ctx.known.clone()).await;
            let verdict = controls.verdict();
            let said = match &verdict {
                absence::Verdict::Calibrated(shape) => {
                    format!("calibrated: {shape} means not held")
                }
                absence::Verdict::Unproven(why) => {
                    *lock(&ctx.unproven) = Some(why.clone());
                    format!("unproven: {why}")
                }
            };
            record_controls::<O>(ctx, &controls, said).await;
            if controls.failed() {
                Err(())
            } else {
                Ok(verdict)
            }
        })
        .await;
    let Ok(absence::Verdict::Calibrated(shape)) = verdict else {
        return None;
    };
    if ctx.absence_void.load(Ordering::Relaxed) || absence::Shape::of(answer) != *shape {
        return None;
    }
    let controls = ask_controls(op, ctx, ctx.known.clone()).await;
    match controls.verdict() {
        _ if controls.failed() => Some(Lookup::Failed(format!(
            "{why}; the lookup's controls got no answer to compare it with"
        ))),
        absence::Verdict::Calibrated(now) if now == *shape => Some(Lookup::Missing),
        _ => {
            // Void for the rest of the run; said once.
            if !ctx.absence_void.swap(true, Ordering::Relaxed) {
                let said = format!(
                    "the lookup's controls changed mid-run ({}): nothing more is sent on the word of {shape}",
                    controls.describe()
                );
                *lock(&ctx.unproven) = Some(said.clone());
                record_controls::<O>(ctx, &controls, format!("void: {said}")).await;
            }
            Some(Lookup::Failed(format!(
                "{why}; the lookup's controls no longer tell it from an order that exists"
            )))
        }
    }
}
