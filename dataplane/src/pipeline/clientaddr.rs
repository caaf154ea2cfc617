//! The client's address for FullNAT backends in the pipeline (see `xlate::clientaddr`): the
//! family-generic step between a connection's lookup and its rewrite. The IPv4 and IPv6
//! paths (and NAT64) call it with their packet's TCP offset and length, then parse again
//! when the packet grew. Connections that use it carry `ConnFlags::PROXIED`, which sends
//! them off the established fast path already (the SYN proxy's flag): a connection without
//! it pays nothing more.

use super::{CoreCtx, Frame, ETH_LEN};
use crate::conn::Dir;
use crate::counters::{DropReason, Event};
use crate::xlate::clientaddr::{self, Endpoints, Shift, ToBackend};

impl<F: Frame> CoreCtx<F> {
    /// Applies `shift` to a TCP packet of its connection going `dir` (IP header at
    /// `ETH_LEN`, TCP at `l4_at`, the IP packet ending at `end`). Toward the backend the
    /// frame may grow, up to `mtu` (the egress MTU) and its buffer. Returns the IP packet's
    /// new end when it changed length (the caller parses it again); on `Err` the frame is
    /// unchanged and should be dropped for that reason.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn apply_client_addr(
        &mut self,
        frame: &mut F,
        l4_at: usize,
        end: usize,
        dir: Dir,
        shift: &mut Shift,
        ep: &Endpoints,
        mtu: usize,
    ) -> Result<Option<usize>, DropReason> {
        if dir == Dir::Reply {
            clientaddr::backend_segment(&mut frame.data_mut()[ETH_LEN..], l4_at, end, shift)
                .map_err(|_| DropReason::MalformedL4)?;
            return Ok(None);
        }
        let len = frame.data().len();
        let want = ETH_LEN + end + usize::from(shift.len);
        if len < want {
            // When the buffer cannot hold it all, `room` below says how much it holds.
            frame.set_len(want);
        }
        let room = (frame.data().len() - ETH_LEN).min(mtu);
        let out = clientaddr::client_segment(&mut frame.data_mut()[ETH_LEN..], l4_at, end, room, shift, ep);
        let grown = match out {
            Ok(ToBackend::Inserted(e)) => e,
            Ok(ToBackend::SynTrimmed(e)) => {
                frame.set_len(ETH_LEN + e);
                return Ok(Some(e));
            }
            Ok(ToBackend::HeaderAlone(e)) => {
                self.counters.event(Event::ClientAddrHeaderAlone).inc();
                e
            }
            other => {
                frame.set_len(len);
                return match other {
                    Ok(ToBackend::NoRoom) => {
                        self.counters.event(Event::ClientAddrToaNoRoom).inc();
                        Ok(None)
                    }
                    Ok(_) => Ok(None),
                    Err(_) => Err(DropReason::MalformedL4),
                };
            }
        };
        self.counters.event(Event::ClientAddrSent).inc();
        frame.set_len(ETH_LEN + grown);
        Ok(Some(grown))
    }
}
