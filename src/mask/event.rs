//! Masking what an event says about a job in pipe's own words — why it failed, was skipped or
//! retried — which may quote what came from the job (an image name, an error of the engine).

use super::Patterns;
use crate::event::{Event, EventKind};

impl Patterns {
    /// Hides every value in the free text of `event`. A job's output lines are left as they
    /// are: they were masked as they came (see [`super::Masker`]).
    pub fn event(&self, event: &mut Event) {
        if self.is_empty() {
            return;
        }
        let text = match &mut event.kind {
            EventKind::JobRetrying { reason, .. }
            | EventKind::JobSkipped { reason, .. }
            | EventKind::JobLeftOut { reason, .. }
            | EventKind::JobWaiting { reason, .. }
            | EventKind::Stopping { reason, .. } => reason,
            EventKind::JobFinished {
                message: Some(message),
                ..
            } => message,
            EventKind::AwaitingRelease { next, .. } => next,
            EventKind::ReleaseStep { message, .. } => message,
            EventKind::PrivilegeGranted { what, .. } => what,
            EventKind::RunStarted { .. }
            | EventKind::JobStarted { .. }
            | EventKind::JobOutput { .. }
            | EventKind::JobFinished { message: None, .. }
            | EventKind::RunFinished { .. }
            | EventKind::Watching { .. }
            | EventKind::FilesChanged { .. }
            // Names and ids, no free text; the job's log lines that say them were masked.
            | EventKind::ImageBuilt { .. }
            | EventKind::ImagePushed { .. }
            | EventKind::JobDrift { .. } => return,
        };
        if let std::borrow::Cow::Owned(masked) = self.text(text) {
            *text = masked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Masks;
    use crate::event::{Event, EventKind};

    #[test]
    fn why_a_job_failed_is_masked() {
        let masks = Masks::default();
        masks.add(["registry.example/s3cr3t-image"]);
        let mut event = Event::now(EventKind::JobSkipped {
            job: "a".into(),
            reason: "image registry.example/s3cr3t-image not found".into(),
        });
        masks.current().event(&mut event);
        let EventKind::JobSkipped { reason, .. } = event.kind else {
            unreachable!()
        };
        assert_eq!(reason, "image *** not found");
    }
}
