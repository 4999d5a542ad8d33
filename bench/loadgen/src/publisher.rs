//! `POST /v1/accounts/{account}/events` over one HTTP/1.1 keep-alive
//! connection per publisher: a publisher has at most one request in flight,
//! so the number of publishers is the publish concurrency.

use crate::{
    Error,
    net::{Sources, Target},
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Request, StatusCode,
    client::conn::http1::{self, SendRequest},
    header,
};
use hyper_util::rt::TokioIo;

pub struct Publisher {
    sender: SendRequest<Full<Bytes>>,
    /// Which source address this publisher reconnects from.
    index: usize,
    bearer: String,
}

impl Publisher {
    pub async fn connect(
        index: usize,
        target: &Target,
        sources: &Sources,
        api_key: &str,
    ) -> Result<Self, Error> {
        Ok(Publisher {
            sender: handshake(index, target, sources).await?,
            index,
            bearer: format!("Bearer {api_key}"),
        })
    }

    /// Publishes `body` (`{event, data}` JSON) to `account`; Ok only on 201.
    /// A broken connection is replaced before the error is returned, so the
    /// next publish can go ahead.
    pub async fn publish(
        &mut self,
        target: &Target,
        sources: &Sources,
        account: &str,
        body: Bytes,
    ) -> Result<(), Error> {
        let result = self.send(target, account, body).await;
        if matches!(result, Err(Error::Http(_))) || self.sender.is_closed() {
            self.sender = handshake(self.index, target, sources).await?;
        }
        result
    }

    async fn send(&mut self, target: &Target, account: &str, body: Bytes) -> Result<(), Error> {
        self.sender
            .ready()
            .await
            .map_err(|e| Error::Http(format!("connection not ready: {e}")))?;
        let req = Request::post(format!("/v1/accounts/{account}/events"))
            .header(header::HOST, &target.authority)
            .header(header::AUTHORIZATION, &self.bearer)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| Error::Config(format!("cannot build request: {e}")))?;
        let response = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| Error::Http(format!("publish failed: {e}")))?;
        let status = response.status();
        let answer = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Http(format!("reading the publish answer: {e}")))?
            .to_bytes();
        if status == StatusCode::CREATED {
            Ok(())
        } else {
            Err(Error::Rejected(format!(
                "publish answered {status}: {:.200}",
                String::from_utf8_lossy(&answer)
            )))
        }
    }
}

async fn handshake(
    index: usize,
    target: &Target,
    sources: &Sources,
) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = sources.connect(index, target).await?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| Error::Http(format!("HTTP handshake: {e}")))?;
    tokio::spawn(async move {
        // Ends when the publisher drops its sender or the server closes.
        let _ = conn.await;
    });
    Ok(sender)
}
