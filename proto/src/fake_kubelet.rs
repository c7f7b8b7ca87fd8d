//! A fake kubelet for tests and the lab (feature `fake-kubelet`): it serves
//! `Registration` on `<dir>/kubelet.sock`, as kubelet does, and hands over
//! each `RegisterRequest`; dialing a plugin back is the caller's business.

use std::path::Path;

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use crate::deviceplugin::v1beta1::{
    registration_server::{Registration, RegistrationServer},
    Empty, RegisterRequest, KUBELET_SOCKET,
};

struct Kubelet(mpsc::Sender<RegisterRequest>);

#[tonic::async_trait]
impl Registration for Kubelet {
    async fn register(&self, request: Request<RegisterRequest>) -> Result<Response<Empty>, Status> {
        self.0
            .send(request.into_inner())
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(Empty {}))
    }
}

/// Serves `<dir>/kubelet.sock` (replacing any earlier one, as a restarted
/// kubelet does) on the current tokio runtime; registrations arrive on the
/// receiver.
pub fn serve(dir: &Path) -> std::io::Result<mpsc::Receiver<RegisterRequest>> {
    let socket = dir.join(KUBELET_SOCKET);
    let _ = std::fs::remove_file(&socket);
    Ok(serve_on(tokio::net::UnixListener::bind(&socket)?))
}

/// Serves `Registration` on a listener the caller made: a socket that was
/// bound some time before it listened, as kubelet's is.
pub fn serve_on(listener: tokio::net::UnixListener) -> mpsc::Receiver<RegisterRequest> {
    let (registered, registrations) = mpsc::channel(16);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RegistrationServer::new(Kubelet(registered)))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    registrations
}
