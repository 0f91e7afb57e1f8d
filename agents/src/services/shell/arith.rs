//! `$(( ))`, `(( ))`, `let`-style arithmetic over 64-bit integers as bash does it
//! (wrapping, C operators, `base#digits`), with bash's error texts. The expression
//! string is parsed by brush-parser; it is measured first so that neither that parser
//! nor the evaluator here (both recursive) can be driven deep: at most
//! [`MAX_OPERATORS`] operator characters, [`MAX_TEXT`] bytes, and variables that hold
//! expressions are followed at most [`MAX_REFERENCE_DEPTH`] levels.

use super::State;
use brush_parser::ast::{
    ArithmeticExpr, ArithmeticTarget, BinaryOperator, UnaryAssignmentOperator, UnaryOperator,
};

/// Longest expression evaluated (after expansion).
const MAX_TEXT: usize = 1024;
/// Most operator characters (and parentheses) in one expression: this bounds the depth
/// of the parsed tree, so of both recursive walks.
const MAX_OPERATORS: usize = 128;
/// A variable whose value is itself an expression is evaluated recursively in bash.
const MAX_REFERENCE_DEPTH: u32 = 8;

/// Evaluates `text`; `Err` holds bash's message after the `bash: line N: ` prefix.
pub(super) fn eval(st: &mut State, text: &str) -> Result<i64, String> {
    eval_at(st, text, 0)
}

fn eval_at(st: &mut State, text: &str, depth: u32) -> Result<i64, String> {
    let ops = text
        .bytes()
        .filter(|b| b"+-*/%<>=!&|^~?:,()".contains(b))
        .count();
    if text.len() > MAX_TEXT || ops > MAX_OPERATORS || depth > MAX_REFERENCE_DEPTH {
        let token = text.trim_start().chars().take(64).collect::<String>();
        return Err(format!(
            "{}: expression recursion level exceeded (error token is \"{token}\")",
            text.trim()
        ));
    }
    // Iterations: the work of one evaluation is bounded by its operators.
    if !st.budget.iterations(ops as u64 + 1) {
        return Ok(0);
    }
    let expr = match super::parse::guard(|| brush_parser::arithmetic::parse(text)) {
        Some(Ok(e)) => e,
        Some(Err(e)) => return Err(syntax_error(text, &e.to_string())),
        None => return Err(syntax_error(text, "")),
    };
    let mut ev = Eval { st, text, depth };
    ev.eval(&expr)
}

/// bash's `syntax error: operand expected` family, with the error token taken from where
/// the parser stopped.
fn syntax_error(text: &str, _detail: &str) -> String {
    let t = text.trim_end();
    // The token is the rest of the text from the last operator: close to what bash says
    // for the common mistakes (`1 +`, `x=`).
    let cut = t
        .rfind(|c: char| "+-*/%<>=!&|^~?:,(".contains(c))
        .unwrap_or(0);
    let rest = &text[cut.min(text.len())..];
    let (kind, token) = if rest.trim().chars().all(|c| "+-*/%<>=!&|^~?:,(".contains(c)) {
        ("operand expected", rest.trim_start())
    } else {
        ("invalid arithmetic operator", rest.trim_start())
    };
    format!(
        "{}: syntax error: {kind} (error token is \"{token}\")",
        text.trim_start()
    )
}

struct Eval<'a> {
    st: &'a mut State,
    text: &'a str,
    depth: u32,
}

impl Eval<'_> {
    fn name(t: &ArithmeticTarget) -> &str {
        match t {
            ArithmeticTarget::Variable(n) | ArithmeticTarget::ArrayElement(n, _) => n,
        }
    }

    fn get(&mut self, t: &ArithmeticTarget) -> Result<i64, String> {
        let v = super::expand::lookup(self.st, Self::name(t)).unwrap_or_default();
        let v = v.trim();
        if v.is_empty() {
            return Ok(0);
        }
        if let Ok(n) = v.parse::<i64>() {
            return Ok(n);
        }
        let v = v.to_owned();
        eval_at(self.st, &v, self.depth + 1)
    }

    fn set(&mut self, t: &ArithmeticTarget, v: i64) {
        self.st.set_var(Self::name(t), &v.to_string());
    }

    fn div_zero(&self) -> String {
        let t = self.text.trim();
        let token = t
            .rfind(['/', '%'])
            .map_or(t, |i| t[i + 1..].trim_start())
            .trim_end_matches('=')
            .trim();
        format!("{t}: division by 0 (error token is \"{token}\")")
    }

    fn binary(&self, op: &BinaryOperator, a: i64, b: i64) -> Result<i64, String> {
        Ok(match op {
            BinaryOperator::Power => {
                if b < 0 {
                    return Err(format!(
                        "{}: exponent less than 0 (error token is \"{b}\")",
                        self.text.trim()
                    ));
                }
                // Square and multiply: at most 64 steps whatever the exponent.
                let (mut base, mut e, mut r) = (a, b as u64, 1i64);
                while e > 0 {
                    if e & 1 == 1 {
                        r = r.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                r
            }
            BinaryOperator::Multiply => a.wrapping_mul(b),
            BinaryOperator::Divide | BinaryOperator::Modulo if b == 0 => {
                return Err(self.div_zero());
            }
            BinaryOperator::Divide => a.wrapping_div(b),
            BinaryOperator::Modulo => a.wrapping_rem(b),
            BinaryOperator::Comma => b,
            BinaryOperator::Add => a.wrapping_add(b),
            BinaryOperator::Subtract => a.wrapping_sub(b),
            BinaryOperator::ShiftLeft => a.wrapping_shl((b & 63) as u32),
            BinaryOperator::ShiftRight => a.wrapping_shr((b & 63) as u32),
            BinaryOperator::LessThan => i64::from(a < b),
            BinaryOperator::LessThanOrEqualTo => i64::from(a <= b),
            BinaryOperator::GreaterThan => i64::from(a > b),
            BinaryOperator::GreaterThanOrEqualTo => i64::from(a >= b),
            BinaryOperator::Equals => i64::from(a == b),
            BinaryOperator::NotEquals => i64::from(a != b),
            BinaryOperator::BitwiseAnd => a & b,
            BinaryOperator::BitwiseXor => a ^ b,
            BinaryOperator::BitwiseOr => a | b,
            BinaryOperator::LogicalAnd => i64::from(a != 0 && b != 0),
            BinaryOperator::LogicalOr => i64::from(a != 0 || b != 0),
        })
    }

    fn eval(&mut self, e: &ArithmeticExpr) -> Result<i64, String> {
        match e {
            ArithmeticExpr::Literal(n) => Ok(*n),
            ArithmeticExpr::Reference(t) => self.get(t),
            ArithmeticExpr::UnaryOp(op, x) => {
                let v = self.eval(x)?;
                Ok(match op {
                    UnaryOperator::UnaryPlus => v,
                    UnaryOperator::UnaryMinus => v.wrapping_neg(),
                    UnaryOperator::BitwiseNot => !v,
                    UnaryOperator::LogicalNot => i64::from(v == 0),
                })
            }
            // `&&` and `||` short-circuit, as in C.
            ArithmeticExpr::BinaryOp(BinaryOperator::LogicalAnd, a, b) => {
                if self.eval(a)? == 0 {
                    return Ok(0);
                }
                Ok(i64::from(self.eval(b)? != 0))
            }
            ArithmeticExpr::BinaryOp(BinaryOperator::LogicalOr, a, b) => {
                if self.eval(a)? != 0 {
                    return Ok(1);
                }
                Ok(i64::from(self.eval(b)? != 0))
            }
            ArithmeticExpr::BinaryOp(op, a, b) => {
                let a = self.eval(a)?;
                let b = self.eval(b)?;
                self.binary(op, a, b)
            }
            ArithmeticExpr::Conditional(c, a, b) => {
                if self.eval(c)? != 0 {
                    self.eval(a)
                } else {
                    self.eval(b)
                }
            }
            ArithmeticExpr::Assignment(t, x) => {
                let v = self.eval(x)?;
                self.set(t, v);
                Ok(v)
            }
            ArithmeticExpr::BinaryAssignment(op, t, x) => {
                let a = self.get(t)?;
                let b = self.eval(x)?;
                let v = self.binary(op, a, b)?;
                self.set(t, v);
                Ok(v)
            }
            ArithmeticExpr::UnaryAssignment(op, t) => {
                let old = self.get(t)?;
                let (new, result) = match op {
                    UnaryAssignmentOperator::PrefixIncrement => {
                        (old.wrapping_add(1), old.wrapping_add(1))
                    }
                    UnaryAssignmentOperator::PrefixDecrement => {
                        (old.wrapping_sub(1), old.wrapping_sub(1))
                    }
                    UnaryAssignmentOperator::PostfixIncrement => (old.wrapping_add(1), old),
                    UnaryAssignmentOperator::PostfixDecrement => (old.wrapping_sub(1), old),
                };
                self.set(t, new);
                Ok(result)
            }
        }
    }
}
